/* test_sdnotify.c - sd_notify datagrams to path and abstract sockets, and the
 * watchdog environment. Each test plays systemd with its own socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/status.h"
#include "server/sdnotify.h"

/* Binds a datagram socket at `name` ("/path" or "@abstract"). */
static int bind_listener(const char *name) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t n = strlen(name);
  assert_true(n < sizeof addr.sun_path);
  memcpy(addr.sun_path, name, n);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  if (name[0] == '@')
    addr.sun_path[0] = '\0';
  else
    len++;
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, len), 0);
  return fd;
}

/* Receives one pending datagram without waiting; -1 when none is queued. */
static ssize_t recv_now(int fd, char *buf, size_t cap) {
  ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);
  if (n >= 0) buf[n] = '\0';
  return n;
}

static void test_path_socket(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-sdnotify-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/notify", dir);
  int fd = bind_listener(path);
  assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);

  char buf[256];
  assert_int_equal(r1d_sd_notify("READY=1"), 0);
  assert_int_equal(recv_now(fd, buf, sizeof buf), 7);
  assert_string_equal(buf, "READY=1");
  assert_int_equal(r1d_sd_notify("STATUS=serving 2 models\nWATCHDOG=1"), 0);
  assert_string_equal((recv_now(fd, buf, sizeof buf), buf),
                      "STATUS=serving 2 models\nWATCHDOG=1");
  assert_int_equal(r1d_sd_notify("STOPPING=1"), 0);
  assert_int_equal(recv_now(fd, buf, sizeof buf), 10);
  assert_string_equal(buf, "STOPPING=1");
  assert_int_equal(recv_now(fd, buf, sizeof buf), -1); /* exactly one each */
  assert_int_equal(r1d_sd_notify(""), R1D_EINVAL);
  assert_int_equal(r1d_sd_notify(NULL), R1D_EINVAL);

  close(fd);
  unlink(path);
  /* the socket is gone: sending must fail, not pretend */
  assert_int_equal(r1d_sd_notify("READY=1"), R1D_EIO);
  rmdir(dir);
  unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state) {
  (void)state;
  char name[64];
  snprintf(name, sizeof name, "@r1d-test-sdnotify-%ld", (long)getpid());
  int fd = bind_listener(name);
  assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
  assert_int_equal(r1d_sd_notify("READY=1"), 0);
  char buf[64];
  assert_int_equal(recv_now(fd, buf, sizeof buf), 7);
  assert_string_equal(buf, "READY=1");
  close(fd);
  unsetenv("NOTIFY_SOCKET");
}

static void test_unset_sends_nothing(void **state) {
  (void)state;
  char name[64];
  snprintf(name, sizeof name, "@r1d-test-unset-%ld", (long)getpid());
  int fd = bind_listener(name);
  unsetenv("NOTIFY_SOCKET");
  assert_int_equal(r1d_sd_notify("READY=1"), 0);
  assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
  assert_int_equal(r1d_sd_notify("READY=1"), 0);
  char buf[64];
  errno = 0;
  assert_int_equal(recv_now(fd, buf, sizeof buf), -1);
  assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
  close(fd);
  unsetenv("NOTIFY_SOCKET");
}

static void test_bad_socket_names(void **state) {
  (void)state;
  assert_int_equal(setenv("NOTIFY_SOCKET", "/nonexistent-r1d/dir/notify", 1),
                   0);
  assert_int_equal(r1d_sd_notify("READY=1"), R1D_EIO);
  assert_int_equal(setenv("NOTIFY_SOCKET", "relative/notify", 1), 0);
  assert_int_equal(r1d_sd_notify("READY=1"), R1D_EIO);
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[0] = '/';
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(setenv("NOTIFY_SOCKET", longname, 1), 0);
  assert_int_equal(r1d_sd_notify("READY=1"), R1D_EIO);
  assert_int_equal(setenv("NOTIFY_SOCKET", "@r1d-nobody-listens-here", 1), 0);
  assert_int_equal(r1d_sd_notify("READY=1"), R1D_EIO);
  unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_env(void **state) {
  (void)state;
  char pid[32];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  uint64_t usec = 7;
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 0);
  assert_int_equal(usec, 7);

  setenv("WATCHDOG_USEC", "30000000", 1);
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 1); /* no PID: ours */
  assert_int_equal(usec, 30000000);
  assert_int_equal(r1d_sd_watchdog_usec(NULL), 1);

  setenv("WATCHDOG_PID", pid, 1);
  usec = 0;
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 1);
  assert_int_equal(usec, 30000000);

  char other[32];
  snprintf(other, sizeof other, "%ld", (long)getpid() + 1);
  setenv("WATCHDOG_PID", other, 1); /* meant for another process */
  usec = 7;
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 0);
  assert_int_equal(usec, 7);
  setenv("WATCHDOG_PID", "garbage", 1);
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 0);

  setenv("WATCHDOG_PID", pid, 1);
  const char *bad[] = {
      "0", "", "-5", "12x", "abc", " 10", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("WATCHDOG_USEC", bad[i], 1);
    assert_int_equal(r1d_sd_watchdog_usec(&usec), 0);
    assert_int_equal(usec, 7);
  }
  setenv("WATCHDOG_USEC", "18446744073709551615", 1); /* UINT64_MAX is valid */
  assert_int_equal(r1d_sd_watchdog_usec(&usec), 1);
  assert_true(usec == UINT64_MAX);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path_socket),
      cmocka_unit_test(test_abstract_socket),
      cmocka_unit_test(test_unset_sends_nothing),
      cmocka_unit_test(test_bad_socket_names),
      cmocka_unit_test(test_watchdog_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
