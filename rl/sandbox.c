/* sandbox.c - the sandboxed child runner (see sandbox.h): everything the
 * child needs is built before fork, the child only makes async-signal-safe
 * system calls until execve, and the parent pumps stdin/stdout/stderr with
 * poll() under the wall-clock deadline, then kills the process group, reaps
 * the program and removes its work dir. */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define DEFAULT_OUTPUT ((size_t)1 << 20)
/* after the kill, how long stragglers that escaped the group (setsid) may
 * keep the output pipes open before the parent stops reading */
#define GRACE_S 1.0
#define CHUNK 65536

void r1d_sandbox_limits_default(r1d_sandbox_limits *lim) {
  memset(lim, 0, sizeof *lim);
  lim->wall_s = 11.0;
  lim->cpu_s = 6;
  lim->memory_bytes = (uint64_t)512 << 20;
  lim->file_bytes = (uint64_t)16 << 20;
  lim->nproc = 64;
  lim->nofile = 64;
  lim->max_output = DEFAULT_OUTPUT;
}

void r1d_sandbox_result_free(r1d_sandbox_result *r) {
  if (!r) return;
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
  r->out_len = r->err_len = 0;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the child (async-signal-safe only) ------------------------------- */

enum { STAGE_READY = 0, STAGE_RLIMIT, STAGE_CHDIR, STAGE_STDIO, STAGE_EXEC };

/* What the child writes on the status pipe: once just before execve (stage
 * READY, with the network flag), and once more if something failed. A
 * successful execve closes the pipe (O_CLOEXEC), which the parent sees as
 * end of file. 12 bytes: one atomic pipe write. */
typedef struct child_report {
  int32_t stage;
  int32_t err;
  int32_t net;
} child_report;

#define N_RLIMITS 6

typedef struct child_plan {
  const char *exe;
  char *const *argv;
  char *const *envp;
  const char *dir;
  int res[N_RLIMITS];
  struct rlimit rl[N_RLIMITS];
  int n_rl;
  int in_r, out_w, err_w, status_w;
  char uid_map[64], gid_map[64];
  size_t uid_map_len, gid_map_len;
  struct sigaction dfl;
  sigset_t empty;
  pid_t parent;
  unsigned max_fd; /* close() loop bound where close_range is missing */
} child_plan;

static void child_report_send(int fd, int stage, int e, int net) {
  child_report r = {stage, e, net};
  ssize_t n;
  do
    n = write(fd, &r, sizeof r);
  while (n < 0 && errno == EINTR);
}

static void child_fail(int fd, int stage, int e) {
  child_report_send(fd, stage, e, 0);
  _exit(127);
}

static void write_proc(const char *path, const char *s, size_t n) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t w = write(fd, s, n);
  (void)w;
  close(fd);
}

static void child_main(const child_plan *p) __attribute__((noreturn));
static void child_main(const child_plan *p) {
  /* a handler inherited from the parent must not run here, and ignored
   * signals would stay ignored across execve */
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &p->dfl, NULL);

  int st = p->status_w;
  setsid(); /* own session and process group: pgid = our pid */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != p->parent) _exit(127); /* the parent died before that */
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  int net = 0;
  if (unshare(CLONE_NEWNET) == 0) {
    net = 1;
  } else if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
    net = 1;
    write_proc("/proc/self/setgroups", "deny", 4);
    write_proc("/proc/self/uid_map", p->uid_map, p->uid_map_len);
    write_proc("/proc/self/gid_map", p->gid_map, p->gid_map_len);
  }

  for (int i = 0; i < p->n_rl; i++)
    if (setrlimit(p->res[i], &p->rl[i])) child_fail(st, STAGE_RLIMIT, errno);
  if (chdir(p->dir)) child_fail(st, STAGE_CHDIR, errno);

  /* move every end above 2 first, so that none is overwritten by the dup2s
   * onto 0-2 whatever numbers the parent's pipes got */
  int s = fcntl(st, F_DUPFD_CLOEXEC, 3);
  int a = fcntl(p->in_r, F_DUPFD, 3);
  int b = fcntl(p->out_w, F_DUPFD, 3);
  int c = fcntl(p->err_w, F_DUPFD, 3);
  if (s < 0 || a < 0 || b < 0 || c < 0) child_fail(st, STAGE_STDIO, errno);
  st = s;
  if (dup2(a, 0) < 0 || dup2(b, 1) < 0 || dup2(c, 2) < 0)
    child_fail(st, STAGE_STDIO, errno);
  if (st != 3) {
    if (dup3(st, 3, O_CLOEXEC) < 0) child_fail(st, STAGE_STDIO, errno);
    st = 3;
  }
  /* every other inherited descriptor, CLOEXEC or not (other threads may
   * have opened some without it) */
  if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
    for (unsigned fd = 4; fd < p->max_fd; fd++)
      close((int)fd);

  child_report_send(st, STAGE_READY, 0, net);
  sigprocmask(SIG_SETMASK, &p->empty, NULL);
  execve(p->exe, p->argv, p->envp);
  child_fail(st, STAGE_EXEC, errno);
  _exit(127);
}

/* ---- preparation in the parent ---------------------------------------- */

typedef struct run_ctx {
  char dir[PATH_MAX];
  int have_dir;
  char *exe;
  char **argv;
  char *envp[8];
  int in_r, in_w, out_r, out_w, err_r, err_w, st_r, st_w;
  int pidfd;
} run_ctx;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Removes the contents of the directory open as fd (takes fd). The program
 * may have left read-only or unsearchable directories: they are chmod'ed
 * first. Depth is bounded (one fd per level). */
static int empty_dir(int fd, int depth) {
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -1;
  }
  int rc = 0;
  for (int pass = 0; pass < 3; pass++) {
    int left = 0;
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
      const char *n = e->d_name;
      if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
      if (unlinkat(dirfd(d), n, 0) == 0) continue;
      if (errno != EISDIR || depth >= 64) {
        left = 1;
        continue;
      }
      int sub =
          openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0 && errno == EACCES) {
        fchmodat(dirfd(d), n, 0700, 0);
        sub = openat(dirfd(d), n,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (sub < 0) {
        left = 1;
        continue;
      }
      fchmod(sub, 0700);
      empty_dir(sub, depth + 1);
      if (unlinkat(dirfd(d), n, AT_REMOVEDIR)) left = 1;
    }
    rc = left ? -1 : 0;
    if (!left) break;
  }
  closedir(d);
  return rc;
}

static void remove_tree(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    fchmod(fd, 0700);
    empty_dir(fd, 0);
  }
  rmdir(dir);
}

static void ctx_free(run_ctx *c) {
  int *fds[] = {&c->in_r,  &c->in_w, &c->out_r, &c->out_w, &c->err_r,
                &c->err_w, &c->st_r, &c->st_w,  &c->pidfd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    close_fd(fds[i]);
  if (c->have_dir) remove_tree(c->dir);
  free(c->exe);
  free(c->argv);
  for (int i = 0; c->envp[i]; i++)
    free(c->envp[i]);
}

static int is_exec_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

/* argv[0] as execve wants it: searched in PATH when it has no '/'. */
static int resolve_exe(const char *name, const char *path, char **exe,
                       r1d_error *err) {
  if (strchr(name, '/')) {
    *exe = strdup(name);
    return *exe ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  size_t nl = strlen(name);
  for (const char *p = path; *p;) {
    const char *end = strchr(p, ':');
    size_t dl = end ? (size_t)(end - p) : strlen(p);
    char *cand = malloc(dl + nl + 3);
    if (!cand) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (dl)
      snprintf(cand, dl + nl + 3, "%.*s/%s", (int)dl, p, name);
    else
      snprintf(cand, dl + nl + 3, "./%s", name);
    if (is_exec_file(cand)) {
      *exe = cand;
      return 0;
    }
    free(cand);
    if (!end) break;
    p = end + 1;
  }
  return r1d_fail(err, R1D_ENOTFOUND, "sandbox: %s: not found in PATH %s", name,
                  path);
}

static int write_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static int make_dir(run_ctx *c, const r1d_sandbox_limits *lim,
                    const r1d_sandbox_file *files, size_t n_files,
                    r1d_error *err) {
  const char *root = lim->tmp_root;
  if (!root || !*root) root = getenv("TMPDIR");
  if (!root || !*root) root = "/tmp";
  int n = snprintf(c->dir, sizeof c->dir, "%s/r1d-sandbox-XXXXXX", root);
  if (n < 0 || (size_t)n >= sizeof c->dir)
    return r1d_fail(err, R1D_EINVAL, "sandbox: temp root too long: %s", root);
  if (!mkdtemp(c->dir))
    return r1d_fail(err, R1D_EIO, "sandbox: mkdtemp in %s: %s", root,
                    strerror(errno));
  c->have_dir = 1;
  for (size_t i = 0; i < n_files; i++) {
    int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dfd < 0 ? -1
                     : openat(dfd, files[i].name,
                              O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e = errno;
    if (dfd >= 0) close(dfd);
    if (fd < 0)
      return r1d_fail(err, R1D_EIO, "sandbox: %s/%s: %s", c->dir, files[i].name,
                      strerror(e));
    int bad = write_all(fd, files[i].data, files[i].len);
    e = errno;
    if (close(fd) && !bad) {
      bad = 1;
      e = errno;
    }
    if (bad)
      return r1d_fail(err, R1D_EIO, "sandbox: writing %s/%s: %s", c->dir,
                      files[i].name, strerror(e));
  }
  return 0;
}

static int make_env(run_ctx *c, const char *path, r1d_error *err) {
  const char *fixed[] = {"LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1",
                         "PYTHONIOENCODING=utf-8"};
  int k = 0;
  if (asprintf(&c->envp[k++], "PATH=%s", path) < 0 ||
      asprintf(&c->envp[k++], "HOME=%s", c->dir) < 0 ||
      asprintf(&c->envp[k++], "TMPDIR=%s", c->dir) < 0) {
    c->envp[k - 1] = NULL;
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    c->envp[k] = strdup(fixed[i]);
    if (!c->envp[k]) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    k++;
  }
  c->envp[k] = NULL;
  return 0;
}

/* Adds one rlimit, clamped to the current hard limit (which the child
 * inherits and cannot raise), so that setrlimit in the child cannot fail. */
static void add_rlimit(child_plan *p, int res, rlim_t soft, rlim_t hard) {
  struct rlimit cur;
  if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
    if (hard == RLIM_INFINITY || hard > cur.rlim_max) hard = cur.rlim_max;
    if (soft == RLIM_INFINITY || soft > hard) soft = hard;
  }
  p->res[p->n_rl] = res;
  p->rl[p->n_rl].rlim_cur = soft;
  p->rl[p->n_rl].rlim_max = hard;
  p->n_rl++;
}

static void plan_rlimits(child_plan *p, const r1d_sandbox_limits *lim) {
  add_rlimit(p, RLIMIT_CORE, 0, 0);
  if (lim->cpu_s > 0)
    add_rlimit(p, RLIMIT_CPU, (rlim_t)lim->cpu_s, (rlim_t)lim->cpu_s + 1);
  if (lim->memory_bytes)
    add_rlimit(p, RLIMIT_AS, (rlim_t)lim->memory_bytes,
               (rlim_t)lim->memory_bytes);
  if (lim->file_bytes)
    add_rlimit(p, RLIMIT_FSIZE, (rlim_t)lim->file_bytes,
               (rlim_t)lim->file_bytes);
  if (lim->nproc > 0)
    add_rlimit(p, RLIMIT_NPROC, (rlim_t)lim->nproc, (rlim_t)lim->nproc);
  if (lim->nofile > 0)
    add_rlimit(p, RLIMIT_NOFILE, (rlim_t)lim->nofile, (rlim_t)lim->nofile);
}

static const char *stage_name(int stage) {
  switch (stage) {
  case STAGE_RLIMIT: return "setrlimit";
  case STAGE_CHDIR: return "chdir to the work dir";
  case STAGE_STDIO: return "setting up stdio";
  case STAGE_EXEC: return "execve";
  default: return "starting the child";
  }
}

/* ---- output capture ---------------------------------------------------- */

typedef struct capture {
  char *buf;
  size_t len, cap, max;
  int over; /* more than max bytes arrived */
} capture;

/* Reads what fd has now into c (at most c->max kept). Returns 1 at end of
 * file or on a read error, 0 when the pipe is just empty, -1 without
 * memory. */
static int drain(int fd, capture *c) {
  char tmp[CHUNK];
  for (;;) {
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
    if (n == 0) return 1;
    size_t room = c->max - c->len, take = (size_t)n < room ? (size_t)n : room;
    if ((size_t)n > take) c->over = 1;
    if (take) {
      if (c->len + take + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + take + 1)
          cap *= 2;
        char *p = realloc(c->buf, cap);
        if (!p) return -1;
        c->buf = p;
        c->cap = cap;
      }
      memcpy(c->buf + c->len, tmp, take);
      c->len += take;
    }
  }
}

static int finish_capture(capture *c, char **out, size_t *len) {
  if (!c->buf) {
    c->buf = malloc(1);
    if (!c->buf) return -1;
  }
  c->buf[c->len] = '\0';
  *out = c->buf;
  *len = c->len;
  c->buf = NULL;
  return 0;
}

/* ---- the run ----------------------------------------------------------- */

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Waits for the program without reaping it (it stays a zombie, so its pid
 * and process group id cannot be reused before the group kill). */
static int exited_unreaped(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD; /* someone else reaped it: treat as gone */
  return si.si_pid == pid;
}

int r1d_sandbox_run(const r1d_sandbox_limits *lim, const char *const argv[],
                    const r1d_sandbox_file *files, size_t n_files,
                    const char *stdin_data, size_t stdin_len,
                    r1d_sandbox_result *out, r1d_error *err) {
  if (out) memset(out, 0, sizeof *out);
  if (!lim || !argv || !argv[0] || !*argv[0] || !out ||
      (stdin_len && !stdin_data) || (n_files && !files))
    return r1d_fail(err, R1D_EINVAL, "sandbox: bad arguments");
  for (size_t i = 0; i < n_files; i++) {
    const char *n = files[i].name;
    if (!n || !*n || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, "..") ||
        (files[i].len && !files[i].data))
      return r1d_fail(err, R1D_EINVAL, "sandbox: bad file name '%s'",
                      n ? n : "(null)");
  }

  run_ctx c;
  memset(&c, 0, sizeof c);
  c.in_r = c.in_w = c.out_r = c.out_w = c.err_r = c.err_w = c.st_r = c.st_w =
      c.pidfd = -1;
  const char *path = lim->path && *lim->path ? lim->path : DEFAULT_PATH;
  child_plan p;
  memset(&p, 0, sizeof p);
  capture cout = {.max = lim->max_output ? lim->max_output : DEFAULT_OUTPUT};
  capture cerr = {.max = cout.max};
  int rc = resolve_exe(argv[0], path, &c.exe, err);
  if (rc) goto done;

  size_t argc = 0;
  while (argv[argc])
    argc++;
  c.argv = calloc(argc + 1, sizeof *c.argv);
  if (!c.argv) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < argc; i++)
    c.argv[i] = (char *)argv[i];
  if ((rc = make_dir(&c, lim, files, n_files, err))) goto done;
  if ((rc = make_env(&c, path, err))) goto done;

  int pin[2], pout[2], perr[2], pst[2];
  if (pipe2(pin, O_CLOEXEC)) goto pipe_fail;
  c.in_r = pin[0], c.in_w = pin[1];
  if (pipe2(pout, O_CLOEXEC)) goto pipe_fail;
  c.out_r = pout[0], c.out_w = pout[1];
  if (pipe2(perr, O_CLOEXEC)) goto pipe_fail;
  c.err_r = perr[0], c.err_w = perr[1];
  if (pipe2(pst, O_CLOEXEC)) goto pipe_fail;
  c.st_r = pst[0], c.st_w = pst[1];
  if (set_nonblock(c.in_w) || set_nonblock(c.out_r) || set_nonblock(c.err_r))
    goto pipe_fail;

  p.exe = c.exe;
  p.argv = c.argv;
  p.envp = c.envp;
  p.dir = c.dir;
  plan_rlimits(&p, lim);
  p.in_r = c.in_r, p.out_w = c.out_w, p.err_w = c.err_w, p.status_w = c.st_w;
  unsigned id = (unsigned)geteuid(), gid = (unsigned)getegid();
  p.uid_map_len =
      (size_t)snprintf(p.uid_map, sizeof p.uid_map, "%u %u 1\n", id, id);
  p.gid_map_len =
      (size_t)snprintf(p.gid_map, sizeof p.gid_map, "%u %u 1\n", gid, gid);
  p.dfl.sa_handler = SIG_DFL;
  sigemptyset(&p.dfl.sa_mask);
  sigemptyset(&p.empty);
  p.parent = getpid();
  struct rlimit nof;
  p.max_fd = getrlimit(RLIMIT_NOFILE, &nof) == 0 && nof.rlim_cur < 65536
                 ? (unsigned)nof.rlim_cur
                 : 65536;

  /* all signals blocked across fork: no handler of ours may run in the
   * child before it has reset them; SIGPIPE stays blocked in this thread
   * for the stdin writes */
  sigset_t all, old, with_pipe;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  double t0 = mono_now();
  pid_t pid = fork();
  if (pid == 0) child_main(&p);
  int fork_errno = errno;
  with_pipe = old;
  sigaddset(&with_pipe, SIGPIPE);
  pthread_sigmask(SIG_SETMASK, &with_pipe, NULL);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  int pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
  int got_epipe = 0;
  if (pid < 0) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    rc = r1d_fail(err, R1D_EIO, "sandbox: fork: %s", strerror(fork_errno));
    goto done;
  }
  close_fd(&c.in_r);
  close_fd(&c.out_w);
  close_fd(&c.err_w);
  close_fd(&c.st_w);

  /* the child's report: READY (then EOF at execve), or a failure */
  child_report rep[2];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(c.st_r, (char *)rep + got, sizeof rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got == sizeof rep) break;
  }
  close_fd(&c.st_r);
  const child_report died = {-1, ECHILD, 0}; /* exited before reporting */
  const child_report *fail = NULL;
  if (got >= sizeof rep[0] && rep[0].stage != STAGE_READY)
    fail = &rep[0];
  else if (got >= sizeof rep && rep[1].stage != STAGE_READY)
    fail = &rep[1];
  else if (got < sizeof rep[0])
    fail = &died;
  if (fail) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int code = fail->stage == STAGE_EXEC &&
                       (fail->err == ENOENT || fail->err == EACCES ||
                        fail->err == ENOEXEC)
                   ? R1D_ENOTFOUND
                   : R1D_EIO;
    rc = r1d_fail(err, code, "sandbox: %s %s: %s", stage_name(fail->stage),
                  c.exe, strerror(fail->err));
    goto done;
  }
  out->network_isolated = rep[0].net;
  out->pid = pid;

#ifdef SYS_pidfd_open
  c.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif

  double deadline = lim->wall_s > 0 ? t0 + lim->wall_s : INFINITY;
  double grace_end = INFINITY;
  int main_done = 0, killed = 0, mem_fail = 0;
  size_t in_off = 0;
  if (!stdin_len) close_fd(&c.in_w);
  while (c.out_r >= 0 || c.err_r >= 0 || !main_done) {
    double now = mono_now();
    if (!killed && now >= deadline) {
      kill(-pid, SIGKILL);
      killed = out->timed_out = 1;
    }
    if ((killed || main_done) && grace_end == INFINITY)
      grace_end = now + GRACE_S;
    if (main_done && now >= grace_end) break;
    if (killed && !main_done && now >= grace_end) break; /* unkillable? */

    struct pollfd pf[4];
    int n = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
    if (c.in_w >= 0) pf[i_in = n++] = (struct pollfd){c.in_w, POLLOUT, 0};
    if (c.out_r >= 0) pf[i_out = n++] = (struct pollfd){c.out_r, POLLIN, 0};
    if (c.err_r >= 0) pf[i_err = n++] = (struct pollfd){c.err_r, POLLIN, 0};
    if (c.pidfd >= 0 && !main_done)
      pf[i_pid = n++] = (struct pollfd){c.pidfd, POLLIN, 0};
    double until = killed || main_done ? grace_end : deadline;
    double wait_s = until - now;
    if (c.pidfd < 0 && !main_done && wait_s > 0.01) wait_s = 0.01;
    int ms = wait_s == INFINITY ? -1 : (int)ceil(wait_s * 1000.0);
    if (ms > 1000000) ms = 1000000;
    if (poll(pf, (nfds_t)n, ms) < 0 && errno != EINTR) {
      kill(-pid, SIGKILL);
      killed = 1;
      break;
    }
    if (i_in >= 0 && pf[i_in].revents) {
      for (;;) {
        size_t left = stdin_len - in_off;
        ssize_t w =
            write(c.in_w, stdin_data + in_off, left < CHUNK ? left : CHUNK);
        if (w > 0) {
          in_off += (size_t)w;
          if (in_off == stdin_len) break;
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0 && errno == EPIPE) got_epipe = 1;
        in_off = stdin_len; /* the program stopped reading: give up */
        break;
      }
      if (in_off == stdin_len) close_fd(&c.in_w);
    }
    int idx[2] = {i_out, i_err};
    int *fds[2] = {&c.out_r, &c.err_r};
    capture *caps[2] = {&cout, &cerr};
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !pf[idx[k]].revents) continue;
      int r = drain(*fds[k], caps[k]);
      if (r < 0) mem_fail = 1;
      if (r != 0) close_fd(fds[k]);
    }
    if (mem_fail || cout.over || cerr.over) {
      if (!killed) kill(-pid, SIGKILL);
      killed = 1;
      if (mem_fail) break;
    }
    if (!main_done && exited_unreaped(pid)) {
      main_done = 1;
      /* the program is a zombie now: its group id is still reserved, so
       * this reaches only what it left behind */
      kill(-pid, SIGKILL);
      close_fd(&c.in_w);
    }
  }
  close_fd(&c.in_w);
  close_fd(&c.out_r);
  close_fd(&c.err_r);
  kill(-pid, SIGKILL); /* before reaping: see above */
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
    ;
  out->wall_s = mono_now() - t0;

  /* a SIGPIPE our writes raised is pending on this thread: take it before
   * the old mask comes back, unless one was pending before we wrote */
  if (got_epipe && !pipe_was_pending && !sigismember(&old, SIGPIPE)) {
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&only, NULL, &zero) < 0 && errno == EINTR)
      ;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  out->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  if (WIFEXITED(status)) {
    out->exited = 1;
    out->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out->term_signal = WTERMSIG(status);
  }
  out->output_truncated = cout.over || cerr.over;
  if (out->term_signal == SIGXCPU)
    out->cpu_limit = 1;
  else if (out->term_signal == SIGKILL && !out->timed_out &&
           !out->output_truncated && lim->cpu_s > 0 &&
           out->cpu_s >= (double)lim->cpu_s)
    out->cpu_limit = 1; /* the hard limit's SIGKILL */
  if (mem_fail) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  if (finish_capture(&cout, &out->out, &out->out_len) ||
      finish_capture(&cerr, &out->err, &out->err_len)) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  rc = 0;
  goto done;

pipe_fail:
  rc = r1d_fail(err, R1D_EIO, "sandbox: pipe: %s", strerror(errno));
done:
  free(cout.buf);
  free(cerr.buf);
  ctx_free(&c);
  if (rc) r1d_sandbox_result_free(out);
  return rc;
}
