/* test_sandbox.c - the sandbox (rl/sandbox.h) and the code checker
 * (rl/verifiers/code.c) with real programs:
 *  - plumbing without Python (sh, cat, env, ls): stdin round trip, 10 MB of
 *    unread stdin (no deadlock, no SIGPIPE for us), the environment, the
 *    work dir and its removal, closed fds, signals, not-found programs;
 *  - Python through the checker: right, wrong, fenced among prose, partial
 *    score, runtime error, memory hog, malformed checkers (R1D_EINVAL),
 *    a missing interpreter (R1D_EIO);
 *  - limits at the sandbox level: CPU loop, sleep (wall clock), a small
 *    fork tree and a background child (the whole group dies), huge output
 *    (truncated), a 100 MB file (RLIMIT_FSIZE), the network (only where the
 *    run reports network_isolated);
 *  - 4 threads x 5 runs at once, each getting its own output.
 * The Python tests are skipped when python3 is not on PATH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rl/sandbox.h"
#include "rl/verifiers/verify.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *find_on_path(const char *name) {
  const char *path = getenv("PATH");
  if (!path) return NULL;
  char *copy = strdup(path), *save = NULL;
  for (char *d = strtok_r(copy, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", d, name);
    if (access(buf, X_OK) == 0) {
      free(copy);
      return strdup(buf);
    }
  }
  free(copy);
  return NULL;
}

static int have_python(void) {
  char *p = find_on_path("python3");
  free(p);
  return p != NULL;
}

#define NEED_PYTHON()                                                          \
  do {                                                                         \
    if (!have_python()) skip();                                                \
  } while (0)

static r1d_sandbox_limits small_limits(double wall_s, long cpu_s) {
  r1d_sandbox_limits lim;
  r1d_sandbox_limits_default(&lim);
  lim.wall_s = wall_s;
  lim.cpu_s = cpu_s;
  return lim;
}

/* Runs `python3 -I -S -B main.py` with `src` as main.py. */
static int run_py(const r1d_sandbox_limits *lim, const char *src,
                  const char *in, size_t in_len, r1d_sandbox_result *res) {
  char *py = find_on_path("python3");
  const char *argv[] = {py, "-I", "-S", "-B", "main.py", NULL};
  r1d_sandbox_file f = {"main.py", src, strlen(src)};
  r1d_error err = {0};
  int rc = r1d_sandbox_run(lim, argv, &f, 1, in, in_len, res, &err);
  if (rc) print_error("%s\n", err.msg);
  free(py);
  return rc;
}

/* ---- plumbing, no Python -------------------------------------------------- */

static void test_cat_roundtrip(void **state) {
  (void)state;
  size_t n = 3u << 20;
  char *data = malloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (char)('a' + (i * 7919) % 26);
  r1d_sandbox_limits lim = small_limits(10, 5);
  lim.max_output = 4u << 20;
  const char *argv[] = {"cat", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, data, n, &res, &err),
                   0);
  assert_int_equal(res.exited, 1);
  assert_int_equal(res.exit_code, 0);
  assert_int_equal(res.out_len, n);
  assert_memory_equal(res.out, data, n);
  assert_int_equal(res.err_len, 0);
  assert_string_equal(res.err, "");
  assert_int_equal(res.output_truncated, 0);
  r1d_sandbox_result_free(&res);
  free(data);
}

/* 10 MB on stdin for a program that never reads it and exits: the parent
 * gets EPIPE, neither deadlocks nor dies of SIGPIPE, and leaves the signal
 * state of the thread as it was. */
static void test_unread_stdin(void **state) {
  (void)state;
  size_t n = 10u << 20;
  char *data = calloc(1, n);
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *argv[] = {"sh", "-c", "echo hi", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  double t0 = now_s();
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, data, n, &res, &err),
                   0);
  assert_true(now_s() - t0 < 5);
  assert_string_equal(res.out, "hi\n");
  assert_int_equal(res.exit_code, 0);
  r1d_sandbox_result_free(&res);
  sigset_t mask, pending;
  pthread_sigmask(SIG_SETMASK, NULL, &mask);
  assert_false(sigismember(&mask, SIGPIPE));
  sigpending(&pending);
  assert_false(sigismember(&pending, SIGPIPE));
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
  free(data);
}

static void test_env_and_workdir(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *argv[] = {"sh", "-c",
                        "pwd; echo \"$HOME\"; cat data.txt; echo; "
                        "env | grep -v '^PWD=' | sort",
                        NULL};
  r1d_sandbox_file f = {"data.txt", "payload", 7};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, argv, &f, 1, NULL, 0, &res, &err), 0);
  char dir[512];
  assert_int_equal(sscanf(res.out, "%511s", dir), 1);
  assert_non_null(strstr(dir, "r1d-sandbox-"));
  char expect[8192];
  snprintf(expect, sizeof expect,
           "%s\n%s\npayload\nHOME=%s\nLANG=C.UTF-8\n"
           "PATH=/usr/local/bin:/usr/bin:/bin\nPYTHONDONTWRITEBYTECODE=1\n"
           "PYTHONIOENCODING=utf-8\nTMPDIR=%s\n",
           dir, dir, dir, dir);
  assert_string_equal(res.out, expect);
  struct stat sb;
  assert_int_equal(stat(dir, &sb), -1); /* removed */
  assert_int_equal(errno, ENOENT);
  r1d_sandbox_result_free(&res);
}

/* What the program leaves in its work dir, read-only dirs included, goes. */
static void test_workdir_removed(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *argv[] = {"sh", "-c",
                        "mkdir -p a/b/c && echo x > a/b/c/f && "
                        "ln -s /etc/passwd a/l && chmod 0500 a/b && "
                        "chmod 0 a/b/c && pwd",
                        NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, NULL, 0, &res, &err),
                   0);
  assert_int_equal(res.exit_code, 0);
  res.out[strcspn(res.out, "\n")] = '\0';
  struct stat sb;
  assert_int_equal(stat(res.out, &sb), -1);
  assert_int_equal(stat("/etc/passwd", &sb), 0); /* the link's target stays */
  r1d_sandbox_result_free(&res);
}

/* The program sees its own uid (mapped onto itself inside a user namespace
 * when one was needed for the network namespace). */
static void test_identity(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *argv[] = {"id", "-u", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, NULL, 0, &res, &err),
                   0);
  char want[32];
  snprintf(want, sizeof want, "%u\n", (unsigned)geteuid());
  assert_string_equal(res.out, want);
  print_message("euid %u, network_isolated = %d\n", (unsigned)geteuid(),
                res.network_isolated);
  r1d_sandbox_result_free(&res);
  lim.tmp_root = "/nonexistent-r1d";
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, NULL, 0, &res, &err),
                   R1D_EIO);
  assert_non_null(strstr(err.msg, "mkdtemp"));
}

static void test_fds_closed(void **state) {
  (void)state;
  int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 100), 100);
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *argv[] = {"ls", "/proc/self/fd", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, NULL, 0, &res, &err),
                   0);
  /* 3 is ls's own handle on the directory */
  assert_string_equal(res.out, "0\n1\n2\n3\n");
  r1d_sandbox_result_free(&res);
  close(fd);
  close(100);
}

static void test_signal_and_exit_code(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(10, 5);
  const char *seg[] = {"sh", "-c", "kill -SEGV $$", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_sandbox_run(&lim, seg, NULL, 0, NULL, 0, &res, &err), 0);
  assert_int_equal(res.exited, 0);
  assert_int_equal(res.term_signal, SIGSEGV);
  assert_int_equal(res.cpu_limit, 0);
  assert_int_equal(res.timed_out, 0);
  r1d_sandbox_result_free(&res);
  const char *ex[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
  assert_int_equal(r1d_sandbox_run(&lim, ex, NULL, 0, NULL, 0, &res, &err), 0);
  assert_int_equal(res.exited, 1);
  assert_int_equal(res.exit_code, 3);
  assert_string_equal(res.err, "oops\n");
  r1d_sandbox_result_free(&res);
}

static void test_bad_calls(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(10, 5);
  r1d_sandbox_result res;
  r1d_error err = {0};
  const char *nope[] = {"r1d-no-such-program", NULL};
  assert_int_equal(r1d_sandbox_run(&lim, nope, NULL, 0, NULL, 0, &res, &err),
                   R1D_ENOTFOUND);
  assert_null(res.out);
  const char *abs_nope[] = {"/nonexistent/r1d-prog", NULL};
  assert_int_equal(
      r1d_sandbox_run(&lim, abs_nope, NULL, 0, NULL, 0, &res, &err),
      R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, "r1d-prog"));
  const char *ok[] = {"true", NULL};
  r1d_sandbox_file bad = {"../x", "", 0};
  assert_int_equal(r1d_sandbox_run(&lim, ok, &bad, 1, NULL, 0, &res, &err),
                   R1D_EINVAL);
  const char *empty[] = {NULL};
  assert_int_equal(r1d_sandbox_run(&lim, empty, NULL, 0, NULL, 0, &res, &err),
                   R1D_EINVAL);
}

static void test_sleep_wall_timeout_sh(void **state) {
  (void)state;
  r1d_sandbox_limits lim = small_limits(0.5, 5);
  const char *argv[] = {"sh", "-c", "sleep 100", NULL};
  r1d_sandbox_result res;
  r1d_error err = {0};
  double t0 = now_s();
  assert_int_equal(r1d_sandbox_run(&lim, argv, NULL, 0, NULL, 0, &res, &err),
                   0);
  double dt = now_s() - t0;
  assert_int_equal(res.timed_out, 1);
  assert_int_equal(res.cpu_limit, 0);
  assert_int_equal(res.term_signal, SIGKILL);
  assert_true(dt >= 0.45 && dt < 2.5);
  r1d_sandbox_result_free(&res);
}

/* ---- the checker ----------------------------------------------------------- */

static json_t *checker(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (!j) fail_msg("bad JSON in test: %s", je.text);
  return j;
}

static const char *SUM_TESTS =
    "{\"type\":\"code\",\"language\":\"python\",\"time_limit_s\":2,"
    "\"tests\":[{\"input\":\"1 2\\n\",\"output\":\"3\\n\"},"
    "{\"input\":\"10 -4\\n\",\"output\":\"6\"},"
    "{\"input\":\"7 7\",\"output\":\"14  \\n\\n\\n\"}]}";

static void verify(const char *answer, const char *spec, int want_rc,
                   r1d_verdict *v) {
  json_t *c = checker(spec);
  r1d_error err = {0};
  int rc = r1d_verify_code(answer, c, v, &err);
  if (rc != want_rc) print_error("rc %d: %s\n", rc, err.msg);
  assert_int_equal(rc, want_rc);
  json_decref(c);
}

static void test_code_correct(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_verdict v;
  verify("a, b = map(int, input().split())\nprint(a + b)\n", SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 1);
  assert_true(v.score == 1.0);
  assert_string_equal(v.detail, "passed 3/3 tests");
}

static void test_code_wrong(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_verdict v;
  verify("a, b = map(int, input().split())\nprint(a - b)\n", SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 0);
  assert_true(v.score == 0.0);
  assert_string_equal(v.detail, "test 1/3: expected '3', got '-1'");
  /* right on the last test only (7 - 7 != 14, but 7 + 7 is) */
  verify("a, b = map(int, input().split())\n"
         "print(a + b if a == b else 0)\n",
         SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 0);
  assert_true(v.score > 0.33 && v.score < 0.34);
  assert_string_equal(v.detail, "test 1/3: expected '3', got '0'");
  /* a runtime error names the exception */
  verify("print(1 // 0)\n", SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 0);
  assert_non_null(strstr(v.detail, "test 1/3: exit code 1: ZeroDivisionError"));
  /* multi-line outputs point at the first differing line */
  verify("print(1)\nprint(2)\nprint(4)\n",
         "{\"tests\":[{\"input\":\"\",\"output\":\"1\\n2\\n3\\n\"}]}", 0, &v);
  assert_string_equal(v.detail, "test 1/1: line 3: expected '3', got '4'");
  verify("print(1)\n", "{\"tests\":[{\"output\":\"1\\n2\"}]}", 0, &v);
  assert_string_equal(v.detail,
                      "test 1/1: line 2: expected '2', got end of output");
}

static void test_code_fenced(void **state) {
  (void)state;
  NEED_PYTHON();
  const char *answer = "We read two numbers and add them. A first try:\n\n"
                       "```python\nprint('not this one')\n```\n\n"
                       "Better:\n\n"
                       "```python\n"
                       "import sys\n"
                       "a, b = map(int, sys.stdin.read().split())\n"
                       "print(a + b)\n"
                       "```\n\n"
                       "For input `1 2` it prints:\n\n```text\n3\n```\nDone.";
  r1d_verdict v;
  verify(answer, SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 1);
  /* a bare fence, and one left open at the end of a cut completion */
  verify("Code:\n```\nprint(sum(map(int, input().split())))\n```\n", SUM_TESTS,
         0, &v);
  assert_int_equal(v.correct, 1);
  verify("Code:\n```py\nprint(sum(map(int, input().split())))\n", SUM_TESTS, 0,
         &v);
  assert_int_equal(v.correct, 1);
  /* prose without code is run as it is: a wrong answer, not an error */
  verify("The answer is 3.", SUM_TESTS, 0, &v);
  assert_int_equal(v.correct, 0);
  assert_non_null(strstr(v.detail, "SyntaxError"));
}

/* A program that ignores its 10 MB of input still passes. */
static void test_code_unread_stdin(void **state) {
  (void)state;
  NEED_PYTHON();
  size_t n = 10u << 20;
  char *big = malloc(n + 1);
  memset(big, '7', n);
  big[n] = '\0';
  json_t *c = json_pack("{s:s, s:[{s:s, s:s}]}", "language", "python", "tests",
                        "input", big, "output", "42");
  r1d_verdict v;
  r1d_error err = {0};
  assert_int_equal(r1d_verify_code("print(42)", c, &v, &err), 0);
  assert_int_equal(v.correct, 1);
  /* and one that reads all of it */
  assert_int_equal(
      r1d_verify_code("import sys\nprint(len(sys.stdin.read()) // 249660)", c,
                      &v, &err),
      0);
  assert_int_equal(v.correct, 1); /* 10485760 // 249660 == 42 */
  json_decref(c);
  free(big);
}

static void test_code_memory_hog(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_verdict v;
  double t0 = now_s();
  verify("x = bytearray(2 * 1024**3)\nprint(3)\n", SUM_TESTS, 0, &v);
  assert_true(now_s() - t0 < 10);
  assert_int_equal(v.correct, 0);
  assert_true(strstr(v.detail, "MemoryError") || strstr(v.detail, "signal"));
}

static void test_code_bad_checker(void **state) {
  (void)state;
  const char *bad[] = {
      "{\"type\":\"code\",\"language\":\"python\"}",
      "{\"language\":\"python\",\"tests\":{\"input\":\"1\",\"output\":\"1\"}}",
      "{\"language\":\"python\",\"tests\":[]}",
      "{\"language\":\"rust\",\"tests\":[{\"input\":\"\",\"output\":\"1\"}]}",
      "{\"language\":3,\"tests\":[{\"input\":\"\",\"output\":\"1\"}]}",
      "{\"tests\":[{\"input\":\"\"}]}",
      "{\"tests\":[{\"input\":5,\"output\":\"1\"}]}",
      "{\"tests\":[\"x\"]}",
      "{\"tests\":[{\"output\":\"1\"}],\"time_limit_s\":-1}",
      "{\"tests\":[{\"output\":\"1\"}],\"time_limit_s\":\"2\"}",
      "{\"type\":\"math\",\"tests\":[{\"output\":\"1\"}]}",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r1d_verdict v;
    json_t *c = checker(bad[i]);
    r1d_error err = {0};
    int rc = r1d_verify_code("print(1)", c, &v, &err);
    if (rc != R1D_EINVAL) print_error("checker %zu: rc %d\n", i, rc);
    assert_int_equal(rc, R1D_EINVAL);
    assert_true(err.msg[0] != '\0');
    json_decref(c);
  }
}

/* No python3 on PATH: the machinery failed (R1D_EIO), not the answer. */
static void test_code_no_python(void **state) {
  (void)state;
  char *old = strdup(getenv("PATH") ? getenv("PATH") : "");
  char empty[] = "/tmp/r1d-sandbox-test-nopy-XXXXXX";
  assert_non_null(mkdtemp(empty));
  setenv("PATH", empty, 1);
  r1d_verdict v;
  json_t *c = checker("{\"tests\":[{\"output\":\"1\"}]}");
  r1d_error err = {0};
  int rc = r1d_verify_code("print(1)", c, &v, &err);
  setenv("PATH", old, 1);
  rmdir(empty);
  free(old);
  json_decref(c);
  assert_int_equal(rc, R1D_EIO);
  assert_non_null(strstr(err.msg, "python3"));
}

/* ---- limits with Python -------------------------------------------------- */

static void test_cpu_loop(void **state) {
  (void)state;
  NEED_PYTHON();
  /* the checker's limits for time_limit_s = 1: CPU 2 s, wall 3 s */
  r1d_sandbox_limits lim = small_limits(3, 2);
  r1d_sandbox_result res;
  double t0 = now_s();
  assert_int_equal(run_py(&lim, "while True: pass\n", NULL, 0, &res), 0);
  double dt = now_s() - t0;
  assert_true(res.cpu_limit || res.timed_out);
  assert_true(dt < lim.wall_s + 2);
  assert_true(res.wall_s < lim.wall_s + 2);
  assert_int_equal(res.exited, 0);
  r1d_sandbox_result_free(&res);
}

static void test_sleep_wall_timeout_py(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(1, 5);
  r1d_sandbox_result res;
  double t0 = now_s();
  assert_int_equal(
      run_py(&lim, "import time\ntime.sleep(100)\n", NULL, 0, &res), 0);
  assert_int_equal(res.timed_out, 1);
  assert_int_equal(res.cpu_limit, 0);
  assert_true(now_s() - t0 < 3);
  r1d_sandbox_result_free(&res);
  /* and the checker's wording */
  r1d_verdict v;
  verify("import time\ntime.sleep(100)\n",
         "{\"tests\":[{\"output\":\"1\"}],\"time_limit_s\":0.5}", 0, &v);
  assert_string_equal(v.detail, "test 1/1: timed out after 2.0 s");
}

/* 1 if a process with that pid exists and is not a zombie. */
static int alive(long pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Number of live (non-zombie) processes in process group pgid. */
static int group_alive(long pgid) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = '\0';
    const char *rp = strrchr(buf, ')');
    char st;
    long ppid, pgrp;
    if (rp && sscanf(rp + 1, " %c %ld %ld", &st, &ppid, &pgrp) == 3 &&
        pgrp == pgid && st != 'Z' && st != 'X')
      n++;
  }
  if (d) closedir(d);
  return n;
}

static int wait_dead(long pid, int group) {
  for (int i = 0; i < 200; i++) {
    if (!(group ? group_alive(pid) : alive(pid))) return 1;
    usleep(10000);
  }
  return 0;
}

/* The program exits and leaves a sleeping child holding its stdout: the run
 * still ends at once, and the child is dead after it. */
static void test_background_child(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(10, 5);
  r1d_sandbox_result res;
  double t0 = now_s();
  assert_int_equal(run_py(&lim,
                          "import os, sys, time\n"
                          "pid = os.fork()\n"
                          "if pid == 0:\n"
                          "    time.sleep(100)\n"
                          "    os._exit(0)\n"
                          "print(pid, flush=True)\n",
                          NULL, 0, &res),
                   0);
  assert_true(now_s() - t0 < 3);
  assert_int_equal(res.timed_out, 0);
  assert_int_equal(res.exit_code, 0);
  long child = atol(res.out);
  assert_true(child > 0);
  assert_true(wait_dead(child, 0));
  assert_true(wait_dead(res.pid, 1));
  r1d_sandbox_result_free(&res);
}

/* A small fork tree (32 sleepers; a real fork bomb would take the machine
 * down where RLIMIT_NPROC does not apply, i.e. as root): the wall timeout
 * kills the whole group. */
static void test_fork_tree(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(1.5, 5);
  r1d_sandbox_result res;
  double t0 = now_s();
  assert_int_equal(run_py(&lim,
                          "import os, time\n"
                          "for i in range(5):\n"
                          "    try:\n"
                          "        os.fork()\n"
                          "    except OSError:\n"
                          "        pass\n"
                          "time.sleep(100)\n",
                          NULL, 0, &res),
                   0);
  assert_true(now_s() - t0 < 4);
  assert_int_equal(res.timed_out, 1);
  assert_true(wait_dead(res.pid, 1));
  r1d_sandbox_result_free(&res);
}

static void test_huge_output(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(10, 5);
  r1d_sandbox_result res;
  double t0 = now_s();
  assert_int_equal(run_py(&lim, "print('x' * 10**8)\n", NULL, 0, &res), 0);
  assert_true(now_s() - t0 < 8);
  assert_int_equal(res.output_truncated, 1);
  assert_int_equal(res.out_len, lim.max_output);
  assert_int_equal(strlen(res.out), lim.max_output);
  assert_int_equal(res.out[0], 'x');
  r1d_sandbox_result_free(&res);
  r1d_verdict v;
  verify("print('x' * 10**8)\n", "{\"tests\":[{\"output\":\"x\"}]}", 0, &v);
  assert_int_equal(v.correct, 0);
  assert_non_null(strstr(v.detail, "output over"));
}

static void test_file_size_limit(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(10, 5);
  r1d_sandbox_result res;
  assert_int_equal(run_py(&lim,
                          "with open('big', 'wb') as f:\n"
                          "    f.write(b'x' * (100 * 1024**2))\n"
                          "print('wrote it')\n",
                          NULL, 0, &res),
                   0);
  /* CPython ignores SIGXFSZ: the write fails with EFBIG instead */
  assert_true((res.exited && res.exit_code != 0) || res.term_signal == SIGXFSZ);
  if (res.exited) assert_non_null(strstr(res.err, "File too large"));
  assert_null(strstr(res.out, "wrote it"));
  r1d_sandbox_result_free(&res);
}

static void test_network(void **state) {
  (void)state;
  NEED_PYTHON();
  r1d_sandbox_limits lim = small_limits(10, 5);
  r1d_sandbox_result res;
  assert_int_equal(run_py(&lim,
                          "import socket\n"
                          "socket.create_connection(('1.1.1.1', 53), "
                          "timeout=2)\n"
                          "print('connected')\n",
                          NULL, 0, &res),
                   0);
  assert_true(res.network_isolated == 0 || res.network_isolated == 1);
  print_message("network_isolated = %d\n", res.network_isolated);
  if (res.network_isolated) {
    assert_int_not_equal(res.exit_code, 0);
    assert_null(strstr(res.out, "connected"));
  }
  r1d_sandbox_result_free(&res);
}

/* ---- concurrency ------------------------------------------------------------ */

typedef struct worker {
  int id;
  int ok;
  char why[1024];
} worker;

static void *work(void *arg) {
  worker *w = arg;
  w->ok = 1;
  for (int r = 0; r < 5; r++) {
    char spec[256];
    snprintf(spec, sizeof spec,
             "{\"tests\":[{\"input\":\"%d %d\\n\",\"output\":\"%d\"}]}", w->id,
             r, w->id * 100 + r);
    json_error_t je;
    json_t *c = json_loads(spec, 0, &je);
    r1d_verdict v;
    r1d_error err = {0};
    int rc = r1d_verify_code("a, b = map(int, input().split())\n"
                             "print(a * 100 + b)\n",
                             c, &v, &err);
    json_decref(c);
    if (rc || !v.correct) {
      w->ok = 0;
      snprintf(w->why, sizeof w->why, "thread %d run %d: rc %d %s / %s", w->id,
               r, rc, err.msg, v.detail);
      break;
    }
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  NEED_PYTHON();
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){.id = i + 1};
    assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) {
    if (!w[i].ok) print_error("%s\n", w[i].why);
    assert_true(w[i].ok);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cat_roundtrip),
      cmocka_unit_test(test_unread_stdin),
      cmocka_unit_test(test_env_and_workdir),
      cmocka_unit_test(test_workdir_removed),
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_fds_closed),
      cmocka_unit_test(test_signal_and_exit_code),
      cmocka_unit_test(test_bad_calls),
      cmocka_unit_test(test_sleep_wall_timeout_sh),
      cmocka_unit_test(test_code_bad_checker),
      cmocka_unit_test(test_code_no_python),
      cmocka_unit_test(test_code_correct),
      cmocka_unit_test(test_code_wrong),
      cmocka_unit_test(test_code_fenced),
      cmocka_unit_test(test_code_unread_stdin),
      cmocka_unit_test(test_code_memory_hog),
      cmocka_unit_test(test_cpu_loop),
      cmocka_unit_test(test_sleep_wall_timeout_py),
      cmocka_unit_test(test_background_child),
      cmocka_unit_test(test_fork_tree),
      cmocka_unit_test(test_huge_output),
      cmocka_unit_test(test_file_size_limit),
      cmocka_unit_test(test_network),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
