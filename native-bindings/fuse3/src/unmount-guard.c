/*
 * auto_unmount after kill -9, made reliable.
 *
 * With auto_unmount, libfuse (3.14) leaves its end of the fusermount3 control socket open for the
 * life of the process. fusermount3 waits for that end to close, then unmounts only if opening the
 * mount point fails with ENOTCONN. When the daemon is killed the kernel closes the socket and the
 * /dev/fuse descriptor in no guaranteed order (6.x releases the newest descriptor first, and the
 * socket is newer). If the socket goes first, fusermount3's open() is queued on a connection that is
 * about to be aborted, fails with ECONNABORTED instead, and the mount is left "Transport endpoint is
 * not connected" (seen in 9 of 30 kills on a loaded machine).
 *
 * So the socket is moved into a small detached guard process (unmount-guard-main.c, a separate
 * program so that it does not keep a copy of Node's memory). The guard waits for the daemon to close
 * its pipe (exit, crash or a normal unmount), then until the mount point no longer answers
 * ECONNABORTED (the connection has been aborted, or the mount is gone), and only then exits, which
 * closes the socket and lets fusermount3 decide.
 */
#define _GNU_SOURCE
#include "unmount-guard.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int fd_list_snapshot(fd_list_t *out) {
  out->fds = NULL;
  out->count = 0;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int cap = 0, self = dirfd(dir);
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    if (out->count == cap) {
      cap = cap ? cap * 2 : 64;
      int *grown = realloc(out->fds, cap * sizeof *grown);
      if (!grown) {
        closedir(dir);
        fd_list_free(out);
        return -1;
      }
      out->fds = grown;
    }
    out->fds[out->count++] = fd;
  }
  closedir(dir);
  return 0;
}

void fd_list_free(fd_list_t *list) {
  free(list->fds);
  list->fds = NULL;
  list->count = 0;
}

static int fd_list_has(const fd_list_t *list, int fd) {
  for (int i = 0; i < list->count; i++)
    if (list->fds[i] == fd) return 1;
  return 0;
}

static int is_unix_stream_socket(int fd) {
  struct stat st;
  int domain = 0, type = 0;
  socklen_t len = sizeof domain;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) return 0;
  len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

int guard_find_control_socket(const fd_list_t *before, int device_fd) {
  fd_list_t after;
  if (fd_list_snapshot(&after) != 0) return -1;
  int found = -1, count = 0;
  for (int i = 0; i < after.count; i++) {
    int fd = after.fds[i];
    if (fd == device_fd || fd_list_has(before, fd) || !is_unix_stream_socket(fd)) continue;
    found = fd;
    count++;
  }
  fd_list_free(&after);
  return count == 1 ? found : -1;
}

/* s3cryptfs-unmount-guard, built next to this addon (build/Release or build-asan). */
static int guard_program(char *out, size_t size) {
  Dl_info info;
  if (!dladdr((void *)guard_program, &info) || !info.dli_fname) return -1;
  const char *slash = strrchr(info.dli_fname, '/');
  if (!slash) return -1;
  int n = snprintf(out, size, "%.*s/s3cryptfs-unmount-guard", (int)(slash - info.dli_fname), info.dli_fname);
  return n > 0 && (size_t)n < size && access(out, X_OK) == 0 ? 0 : -1;
}

int guard_start(const char *mountpoint, int control_socket) {
  char program[4096];
  int pipe_fds[2];
  if (mountpoint[0] != '/' || guard_program(program, sizeof program) != 0) return -1;
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  /* The guard gets them as 3 and 4; an overlap would make the dup2s clobber each other. */
  if (control_socket < 5 || pipe_fds[0] < 5) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (int fd = 0; fd < 3; fd++) posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&actions, control_socket, 3);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 4);
  char *const argv[] = {program, (char *)mountpoint, NULL};
  char *const envp[] = {NULL};
  pid_t pid;
  int err = posix_spawn(&pid, program, &actions, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[0]);
  int status = -1;
  /* It forks the guard and exits at once. */
  while (!err && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (err || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    close(pipe_fds[1]);
    return -1;
  }
  close(control_socket);
  return pipe_fds[1];
}
