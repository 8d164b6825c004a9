/* sandbox.h - run an untrusted program (a model's code answer, RL.md
 * "Rewards") in a child process with resource limits, a private temporary
 * working directory, a minimal environment and, where the kernel allows it,
 * no network; feed it stdin and capture its stdout/stderr.
 *
 * What the child gets:
 *  - a new session (setsid): the program and everything it forks share one
 *    process group, which is SIGKILLed as a whole on the wall-clock timeout,
 *    when an output stream passes its cap, and when the program exits (so a
 *    background child it left behind dies with it). A process that calls
 *    setsid()/setpgid() itself escapes this group; no PID namespace is used.
 *  - rlimits: CPU (soft = cpu_s, hard = cpu_s + 1: SIGXCPU, then SIGKILL),
 *    AS, FSIZE, NOFILE, NPROC, CORE = 0. RLIMIT_NPROC counts every process
 *    of the real uid (not only the sandbox's) and is not enforced for root
 *    (CAP_SYS_RESOURCE): it bounds a fork bomb only for an unprivileged
 *    daemon user with few other processes; the wall timeout and the group
 *    kill are the backstop either way.
 *  - a fresh network namespace (only loopback, down): unshare(CLONE_NEWNET),
 *    and if that is refused, unshare(CLONE_NEWUSER | CLONE_NEWNET) (allowed
 *    unprivileged on most kernels; the uid/gid map the caller's ids onto
 *    themselves). Where both fail the program runs with the host's network
 *    and the result says network_isolated = 0.
 *  - a new mkdtemp directory as cwd, HOME and TMPDIR, removed with all its
 *    contents after the run (the limits bound each file, not their count);
 *  - environment: PATH, LANG=C.UTF-8, HOME, TMPDIR, PYTHONDONTWRITEBYTECODE=1,
 *    PYTHONIOENCODING=utf-8, nothing else; fds 0/1/2 only (pipes);
 *    no_new_privs; default signal dispositions and an empty signal mask;
 *    PR_SET_PDEATHSIG so the child dies if the calling thread goes away.
 *
 * Threads: r1d_sandbox_run keeps no global state and may run in several
 * threads at once. It forks (a CLONE_VM child could not unshare a user
 * namespace) and does only async-signal-safe system calls between fork and
 * exec; everything (argv, envp, rlimits, paths, the uid maps) is prepared
 * before. SIGPIPE from writing stdin to a program that stopped reading is
 * blocked in the calling thread for the duration of the call and a SIGPIPE
 * raised by those writes is consumed (sigtimedwait) before the old mask is
 * restored: no process-wide disposition changes. The process must not reap
 * children it does not own (waitpid(-1), SIGCHLD set to SIG_IGN), or the
 * exit status is lost. */
#ifndef R1D_RL_SANDBOX_H
#define R1D_RL_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

typedef struct r1d_sandbox_limits {
  double wall_s;         /* wall-clock timeout; <= 0: none */
  long cpu_s;            /* RLIMIT_CPU soft limit; <= 0: unlimited */
  uint64_t memory_bytes; /* RLIMIT_AS; 0: unlimited */
  uint64_t file_bytes;   /* RLIMIT_FSIZE; 0: unlimited */
  long nproc;            /* RLIMIT_NPROC (see above); <= 0: unchanged */
  long nofile;           /* RLIMIT_NOFILE; <= 0: unchanged */
  size_t max_output;     /* cap on each of stdout and stderr; 0: 1 MiB */
  const char *path;      /* PATH for the child and for finding argv[0] when
                            it has no '/'; NULL: /usr/local/bin:/usr/bin:/bin */
  const char *tmp_root;  /* where the work dir is made; NULL: $TMPDIR, /tmp */
} r1d_sandbox_limits;

/* A file written into the work dir before the program starts. */
typedef struct r1d_sandbox_file {
  const char *name; /* plain file name, no '/' */
  const char *data;
  size_t len;
} r1d_sandbox_file;

typedef struct r1d_sandbox_result {
  int exited; /* 1: exited normally with exit_code */
  int exit_code;
  int term_signal;      /* the signal that ended it, else 0 */
  int timed_out;        /* killed by the wall-clock timeout */
  int cpu_limit;        /* ended by RLIMIT_CPU (SIGXCPU, or the hard SIGKILL) */
  int output_truncated; /* a stream passed max_output: cut there, and the
                           program killed (treat as a failure) */
  int network_isolated; /* 1: ran in its own network namespace */
  int pid;              /* the program's pid = its process group id (logs,
                           tests); reaped, so possibly reused already */
  double wall_s;        /* from fork to reaping */
  double cpu_s;         /* user + system time of the program's process */
  char *out;            /* captured stdout, NUL-terminated (malloc'd) */
  size_t out_len;
  char *err; /* captured stderr, NUL-terminated (malloc'd) */
  size_t err_len;
} r1d_sandbox_result;

/* Fills *lim with the code verifier's per-test defaults: wall 11 s, CPU 6 s,
 * 512 MiB memory, 16 MiB files, 64 processes, 64 open files, 1 MiB output. */
void r1d_sandbox_limits_default(r1d_sandbox_limits *lim);

/* Runs argv (argv[0] searched in lim->path when it has no '/'; a relative
 * path with a '/' is taken from the work dir, e.g. "./a.out") in the
 * sandbox with the n_files files in its work dir and stdin_data on its
 * stdin, and fills *out (zeroed first; free with r1d_sandbox_result_free,
 * also after an error). A program that fails, times out or is killed is a
 * successful run (0) described by *out. Errors: R1D_EINVAL (bad arguments,
 * a file name with '/'), R1D_ENOTFOUND (argv[0] not found or not
 * executable), R1D_ENOMEM, R1D_EIO (pipes, fork, the work dir, exec). */
int r1d_sandbox_run(const r1d_sandbox_limits *lim, const char *const argv[],
                    const r1d_sandbox_file *files, size_t n_files,
                    const char *stdin_data, size_t stdin_len,
                    r1d_sandbox_result *out, r1d_error *err);

void r1d_sandbox_result_free(r1d_sandbox_result *r);

#endif
