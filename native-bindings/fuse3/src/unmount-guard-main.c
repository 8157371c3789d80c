/*
 * s3cryptfs-unmount-guard MOUNTPOINT: the process that holds libfuse's auto_unmount control socket
 * (see unmount-guard.c for why). Started by the addon with the socket on descriptor 3 and the read
 * end of a pipe from the daemon on descriptor 4. It detaches, waits for the daemon to close the pipe
 * (exit, crash or unmount), then until the mount's connection has been aborted, and exits, which
 * closes the socket: fusermount3 then sees ENOTCONN and unmounts a dead mount.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { CONTROL_SOCKET = 3, DAEMON_PIPE = 4, FIRST_OTHER = 5 };

static void close_others(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)FIRST_OTHER, ~0u, 0u) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = FIRST_OTHER; fd < (max > 0 && max < 65536 ? max : 65536); fd++) close(fd);
}

int main(int argc, char **argv) {
  if (argc != 2 || argv[1][0] != '/') return 2;
  /* Detach: nobody's zombie, and outside the daemon's process group (Ctrl-C is for the daemon). */
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid > 0) return 0;
  setsid();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL); /* like fusermount3: only the daemon going away ends us */
  close_others();
  if (chdir("/") != 0) return 1;

  for (;;) {
    char b;
    ssize_t n = read(DAEMON_PIPE, &b, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  /* ECONNABORTED: our open() was queued before the connection was aborted; look again. */
  for (int i = 0; i < 1000; i++) {
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      close(fd);
      break;
    }
    if (errno != ECONNABORTED && errno != EINTR) break;
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
  }
  return 0; /* closes CONTROL_SOCKET */
}
