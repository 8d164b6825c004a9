/* sdnotify.c - sd_notify and the watchdog interval from the environment.
 *
 * One unconnected SOCK_DGRAM socket per call: notifications are rare (start,
 * stop, a watchdog ping every few seconds), so keeping no socket open means
 * no state to share between threads and nothing to leak across a fork. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/status.h"

/* Fills *addr from $NOTIFY_SOCKET's value; returns the address length, or 0
 * when the name is unusable (too long, neither a path nor '@'). */
static socklen_t notify_addr(const char *name, struct sockaddr_un *addr) {
  size_t n = strlen(name);
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (name[0] != '/' && name[0] != '@') return 0;
  if (n >= sizeof addr->sun_path) return 0;
  memcpy(addr->sun_path, name, n);
  if (name[0] == '@') {
    /* abstract: a leading NUL, and the length counts only the name's bytes */
    addr->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  }
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

int r1d_sd_notify(const char *state) {
  if (!state || !state[0]) return R1D_EINVAL;
  const char *name = getenv("NOTIFY_SOCKET");
  if (!name || !name[0]) return 0;
  struct sockaddr_un addr;
  socklen_t alen = notify_addr(name, &addr);
  if (alen == 0) return R1D_EIO;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return R1D_EIO;
  size_t len = strlen(state);
  ssize_t sent;
  do
    sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
  while (sent < 0 && errno == EINTR);
  close(fd);
  return sent == (ssize_t)len ? 0 : R1D_EIO;
}

/* Parses a whole positive decimal number; 0 when s is not one. */
static unsigned long long parse_positive(const char *s) {
  if (!s || s[0] < '0' || s[0] > '9') return 0;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end != '\0') return 0;
  return v;
}

int r1d_sd_watchdog_usec(uint64_t *usec) {
  unsigned long long v = parse_positive(getenv("WATCHDOG_USEC"));
  if (v == 0) return 0;
  const char *pid_s = getenv("WATCHDOG_PID");
  if (pid_s) {
    unsigned long long pid = parse_positive(pid_s);
    if (pid == 0 || pid != (unsigned long long)getpid()) return 0;
  }
  if (usec) *usec = (uint64_t)v;
  return 1;
}
