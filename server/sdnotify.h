/* sdnotify.h - systemd's readiness and watchdog protocol, without libsystemd.
 *
 * Under systemd (Type=notify) the service tells the manager it is ready,
 * stopping, or still alive by sending short "KEY=value" datagrams to the
 * AF_UNIX socket named in $NOTIFY_SOCKET. The protocol is tiny and stable, so
 * we speak it directly instead of linking libsystemd. Outside systemd (no
 * $NOTIFY_SOCKET) every call is a harmless no-op. */
#ifndef R1D_SERVER_SDNOTIFY_H
#define R1D_SERVER_SDNOTIFY_H

#include <stdint.h>

/* Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...", or
 * several such lines joined by '\n') as one datagram to $NOTIFY_SOCKET: a
 * filesystem path, or an abstract socket when it starts with '@'. Returns 0
 * when sent and 0 when $NOTIFY_SOCKET is unset or empty (not under systemd);
 * R1D_EIO when the socket cannot be reached or the datagram not sent whole,
 * R1D_EINVAL for a NULL or empty state. */
int r1d_sd_notify(const char *state);

/* Reads the watchdog interval systemd asks for: $WATCHDOG_USEC (a positive
 * decimal number of microseconds), valid for this process only when
 * $WATCHDOG_PID is unset or equals getpid(). Returns 1 and *usec (if usec is
 * non-NULL) when the watchdog is enabled, else 0 and leaves *usec alone. Send
 * "WATCHDOG=1" at least every usec / 2 microseconds. */
int r1d_sd_watchdog_usec(uint64_t *usec);

#endif
