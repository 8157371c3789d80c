/* Makes libfuse's auto_unmount reliable when the daemon is killed (see unmount-guard.c). */
#ifndef S3CRYPTFS_UNMOUNT_GUARD_H
#define S3CRYPTFS_UNMOUNT_GUARD_H

/* The descriptors open now, for guard_find_control_socket() after fuse_session_mount(). */
typedef struct {
  int *fds;
  int count;
} fd_list_t;

int fd_list_snapshot(fd_list_t *out);
void fd_list_free(fd_list_t *list);

/*
 * The fusermount3 control socket libfuse left open during fuse_session_mount(): the one new
 * AF_UNIX stream socket not in `before` (and not the device). -1 if there is none (no auto_unmount,
 * or mounted without fusermount3) or more than one.
 */
int guard_find_control_socket(const fd_list_t *before, int device_fd);

/*
 * Hands `control_socket` to a detached guard process and closes it here. Returns the guard's
 * descriptor (close it once the mount is detached, so the guard exits), or -1 if the guard could
 * not start (then the socket stays open here, as libfuse left it).
 */
int guard_start(const char *mountpoint, int control_socket);

#endif
