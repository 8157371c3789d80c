/*
 * s3cryptfs: an N-API binding to libfuse3's low-level API.
 *
 * The session's /dev/fuse descriptor is non-blocking and watched on the Node event loop (uv_poll).
 * When it is readable we read and process up to BATCH requests; libfuse calls our low-level
 * callbacks, and each callback hands the request to one JavaScript function
 * (`dispatch(op, id, ...args)`) and returns at once. JavaScript answers later through the session's
 * reply methods with the request id. No thread waits on a request.
 *
 * Request ids index a slot table. A slot holds the fuse_req_t until the one reply it gets; the id
 * carries the slot's generation, so a second reply (or a reply to an id that was never issued) finds
 * no request and returns false instead of touching freed memory. A reply whose arguments are invalid
 * answers the request with EIO and throws, so no request is ever left unanswered by a JavaScript bug.
 *
 * Everything here runs on the event loop thread: no locks.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>
#include <uv.h>

#include "unmount-guard.h"

/* ------------------------------------------------------------------------------------------------ */
/* Operation numbers shared with JavaScript (exported as `ops`).                                      */

enum {
  OP_INIT = 0, OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
  OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH,
  OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_ACCESS,
  OP_CREATE, OP_READDIRPLUS, OP_INTERRUPT, OP_ENDED, OP_COUNT
};

static const char *const OP_NAMES[OP_COUNT] = {
  "init", "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
  "unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush",
  "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "access",
  "create", "readdirplus", "interrupt", "ended",
};

/* Reply kinds; ALLOWED[op] says which ones a request of that op accepts. */
enum {
  RK_ERR = 1 << 0, RK_OK = 1 << 1, RK_ENTRY = 1 << 2, RK_ATTR = 1 << 3, RK_READLINK = 1 << 4,
  RK_OPEN = 1 << 5, RK_CREATE = 1 << 6, RK_BUF = 1 << 7, RK_WRITE = 1 << 8, RK_DIR = 1 << 9,
  RK_STATFS = 1 << 10,
};

static int allowed_replies(int op) {
  switch (op) {
    case OP_LOOKUP: case OP_MKNOD: case OP_MKDIR: case OP_SYMLINK: case OP_LINK: return RK_ERR | RK_ENTRY;
    case OP_GETATTR: case OP_SETATTR: return RK_ERR | RK_ATTR;
    case OP_READLINK: return RK_ERR | RK_READLINK;
    case OP_OPEN: case OP_OPENDIR: return RK_ERR | RK_OPEN;
    case OP_CREATE: return RK_ERR | RK_CREATE;
    case OP_READ: return RK_ERR | RK_BUF;
    case OP_WRITE: return RK_ERR | RK_WRITE;
    case OP_READDIR: case OP_READDIRPLUS: return RK_ERR | RK_DIR;
    case OP_STATFS: return RK_ERR | RK_STATFS;
    case OP_UNLINK: case OP_RMDIR: case OP_RENAME: case OP_FLUSH: case OP_RELEASE: case OP_FSYNC:
    case OP_RELEASEDIR: case OP_FSYNCDIR: case OP_ACCESS: return RK_ERR | RK_OK;
    default: return 0;
  }
}

/* Layout of one attribute record in the Float64Array scratch / readdir arrays. */
enum {
  A_INO = 0, A_MODE, A_NLINK, A_UID, A_GID, A_SIZE, A_BLOCKS, A_BLKSIZE,
  A_ATIME_S, A_ATIME_NS, A_MTIME_S, A_MTIME_NS, A_CTIME_S, A_CTIME_NS,
  A_ENTRY, /* readdirplus only: 1 = send the attributes (a lookup reference), 0 = the name only */
  A_STRIDE
};
/* statfs record in the scratch array. */
enum { F_BSIZE = 0, F_FRSIZE, F_BLOCKS, F_BFREE, F_BAVAIL, F_FILES, F_FFREE, F_FAVAIL, F_FSID, F_FLAG, F_NAMEMAX, F_COUNT };
/* Flags of replyOpen / replyCreate. */
enum { OF_DIRECT_IO = 1, OF_KEEP_CACHE = 2, OF_NONSEEKABLE = 4, OF_CACHE_READDIR = 8, OF_NOFLUSH = 16 };

#define SCRATCH_DOUBLES 64
#define BATCH 64
#define MAX_SAFE 9007199254740991.0 /* 2^53 - 1 */
#define SLOT_BITS 24
#define SLOT_LIMIT (1u << SLOT_BITS)
#define GEN_LIMIT (1u << 28)
#define NAME_MAX_BYTES 1024

/* ------------------------------------------------------------------------------------------------ */

typedef struct {
  fuse_req_t req; /* NULL when free */
  uint32_t gen;
  uint32_t size; /* read / readdir: bytes the kernel asked for */
  uint32_t next_free;
  uint8_t op;
  uint8_t interrupted;
} slot_t;

typedef struct session {
  napi_env env;
  struct fuse_session *se;
  int test_mode;       /* no kernel: replies are recorded, not sent */
  uv_poll_t poll;
  int polling;         /* uv_poll_start()ed and not stopped */
  int poll_inited;
  int fd;
  int ended;           /* the kernel connection is gone (or close() was called) */
  int closed;          /* close() ran */
  int unmounted;       /* fuse_session_unmount() ran */
  int guard_fd;        /* pipe to the auto_unmount guard (unmount-guard.c), or -1 */
  int refs;            /* JS wrapper + open session */
  int cleanup_hook;
  napi_ref dispatch_ref;
  napi_ref scratch_ref;
  napi_ref write_buffer_ref; /* optional (size) => Buffer: the blocks requests are read into */
  napi_ref resource_ref;
  napi_async_context actx;
  double *scratch;
  /*
   * The block the next request is read into: a pooled JavaScript Buffer (recv_ref) when the
   * session has a writeBuffer provider, else malloc'd. A large WRITE's data is handed to JavaScript
   * as a view of the block (no copy), and the next request goes into a fresh block.
   */
  char *recv_mem;
  size_t recv_len, recv_size;
  napi_ref recv_ref;
  slot_t *slots;
  uint32_t nslots, cap_slots, free_head, pending, max_pending;
  uint32_t *intr;      /* request ids interrupted during the current processing step */
  uint32_t nintr, cap_intr;
  double *intr_ids;
  /* init parameters */
  unsigned max_write, max_readahead, max_background, congestion_threshold;
  int writeback, want_readdirplus;
  unsigned capable, want; /* what the kernel offered / what we took (after init) */
  double requests[OP_COUNT];
  double replies_dropped; /* replies to requests already answered / unknown */
  /* test mode: what the last reply was */
  int test_last_kind, test_last_err;
  double test_last_len;
} session_t;

static char g_log[2048];
static int g_debug_log;

static void log_func(enum fuse_log_level level, const char *fmt, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  if (g_debug_log || level <= FUSE_LOG_ERR) {
    size_t have = strlen(g_log);
    if (have + strlen(line) + 1 < sizeof g_log) strcat(g_log, line);
  }
  if (g_debug_log) fputs(line, stderr);
}

/* ------------------------------------------------------------------------------------------------ */
/* N-API helpers                                                                                      */

#define NAPI_CALL(env, call)                                                         \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      bool pending_ = false;                                                         \
      napi_is_exception_pending((env), &pending_);                                   \
      if (!pending_) napi_throw_error((env), "EFUSE3", "N-API call failed: " #call); \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value boolean(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

static int get_double(napi_env env, napi_value v, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_number) return napi_get_value_double(env, v, out) == napi_ok && isfinite(*out) ? 0 : -1;
  if (t == napi_bigint) {
    uint64_t u;
    bool lossless;
    if (napi_get_value_bigint_uint64(env, v, &u, &lossless) != napi_ok || !lossless || u > (uint64_t)MAX_SAFE) return -1;
    *out = (double)u;
    return 0;
  }
  return -1;
}

/* A safe non-negative integer (inode numbers, handles, ids, sizes). */
static int get_index(napi_env env, napi_value v, uint64_t *out) {
  double d;
  if (get_double(env, v, &d) || d < 0 || d > MAX_SAFE || d != floor(d)) return -1;
  *out = (uint64_t)d;
  return 0;
}

static int get_int_range(napi_env env, napi_value v, double lo, double hi, int64_t *out) {
  double d;
  if (get_double(env, v, &d) || d < lo || d > hi || d != floor(d)) return -1;
  *out = (int64_t)d;
  return 0;
}

static int is_int_in(double d, double lo, double hi) {
  return isfinite(d) && d >= lo && d <= hi && d == floor(d);
}

/*
 * Names and symlink targets from the kernel. Strict UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF), at most NAME_MAX_BYTES bytes; names may not contain '/'. Returns 0 when valid.
 * The JavaScript side only ever sees well-formed strings, so a name never changes on the way through.
 */
static int check_utf8(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      if (c == 0) return -1;
      i++;
      continue;
    }
    unsigned need, min;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; min = 0x10000; }
    else return -1;
    if (len - i <= need) return -1;
    for (unsigned k = 1; k <= need; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xc0) != 0x80) return -1;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    i += need + 1;
  }
  return 0;
}

static int decode_bytes(napi_env env, const char *s, size_t len, int is_name, napi_value *out) {
  if (len == 0 || len > NAME_MAX_BYTES) return -1;
  if (check_utf8((const unsigned char *)s, len)) return -1;
  if (is_name && memchr(s, '/', len)) return -1;
  return napi_create_string_utf8(env, s, len, out) == napi_ok ? 0 : -1;
}

static int decode_name(napi_env env, const char *s, int is_name, napi_value *out) {
  size_t len = strnlen(s, NAME_MAX_BYTES + 1);
  return decode_bytes(env, s, len, is_name, out);
}

/* ------------------------------------------------------------------------------------------------ */
/* Slots                                                                                              */

static double slot_id(session_t *s, uint32_t index) {
  return (double)s->slots[index].gen * (double)SLOT_LIMIT + (double)index;
}

/* Returns the index of a new slot for req, or UINT32_MAX when the table is full. */
static uint32_t slot_alloc(session_t *s, fuse_req_t req, int op) {
  uint32_t index;
  if (s->free_head != UINT32_MAX) {
    index = s->free_head;
    s->free_head = s->slots[index].next_free;
  } else {
    if (s->nslots == s->cap_slots) {
      uint32_t cap = s->cap_slots ? s->cap_slots * 2 : 256;
      if (cap > SLOT_LIMIT) cap = SLOT_LIMIT;
      if (cap == s->cap_slots) return UINT32_MAX;
      slot_t *n = realloc(s->slots, cap * sizeof(slot_t));
      if (!n) return UINT32_MAX;
      s->slots = n;
      s->cap_slots = cap;
    }
    index = s->nslots++;
    s->slots[index].gen = 1;
  }
  slot_t *sl = &s->slots[index];
  sl->req = req;
  sl->op = (uint8_t)op;
  sl->interrupted = 0;
  sl->size = 0;
  sl->next_free = UINT32_MAX;
  s->pending++;
  if (s->pending > s->max_pending) s->max_pending = s->pending;
  return index;
}

static void slot_free(session_t *s, uint32_t index) {
  slot_t *sl = &s->slots[index];
  sl->req = NULL;
  sl->gen = sl->gen + 1 >= GEN_LIMIT ? 1 : sl->gen + 1;
  sl->next_free = s->free_head;
  s->free_head = index;
  s->pending--;
}

/* The live slot an id names, or UINT32_MAX. */
static uint32_t slot_find(session_t *s, double id) {
  if (!is_int_in(id, 0, MAX_SAFE)) return UINT32_MAX;
  uint64_t v = (uint64_t)id;
  uint32_t index = (uint32_t)(v & (SLOT_LIMIT - 1));
  uint64_t gen = v >> SLOT_BITS;
  if (index >= s->nslots) return UINT32_MAX;
  slot_t *sl = &s->slots[index];
  if (!sl->req || sl->gen != gen) return UINT32_MAX;
  return index;
}

/* ------------------------------------------------------------------------------------------------ */
/* Sending replies (or recording them in test mode)                                                  */

static void test_record(session_t *s, int kind, int err, double len) {
  s->test_last_kind = kind;
  s->test_last_err = err;
  s->test_last_len = len;
}

static void send_err(session_t *s, fuse_req_t req, int err) {
  if (s->test_mode) return test_record(s, err ? RK_ERR : RK_OK, err, 0);
  fuse_reply_err(req, err);
}

static void fail_slot(session_t *s, uint32_t index, int err) {
  fuse_req_t req = s->slots[index].req;
  slot_free(s, index);
  send_err(s, req, err);
}

/* Answers every request still waiting (at close, or when the connection is gone). */
static void fail_all(session_t *s, int err) {
  for (uint32_t i = 0; i < s->nslots; i++) {
    if (s->slots[i].req) fail_slot(s, i, err);
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Calling JavaScript                                                                                 */

static void call_dispatch(session_t *s, size_t argc, napi_value *argv) {
  napi_env env = s->env;
  napi_value fn, recv;
  if (napi_get_reference_value(env, s->dispatch_ref, &fn) != napi_ok || !fn) return;
  napi_get_undefined(env, &recv);
  napi_status st = napi_call_function(env, recv, fn, argc, argv, NULL);
  if (st != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
}

static void interrupt_cb(fuse_req_t req, void *data);

/*
 * Starts handing a request to JavaScript: allocates its slot and fills argv[0..1] with the op and
 * the request id. Returns the slot index, or UINT32_MAX after answering the request itself.
 */
static uint32_t begin(session_t *s, fuse_req_t req, int op, napi_value *argv) {
  s->requests[op]++;
  uint32_t index = slot_alloc(s, req, op);
  if (index == UINT32_MAX) {
    send_err(s, req, ENOMEM);
    return UINT32_MAX;
  }
  argv[0] = num(s->env, op);
  argv[1] = num(s->env, slot_id(s, index));
  if (!s->test_mode) fuse_req_interrupt_func(req, interrupt_cb, (void *)(uintptr_t)slot_id(s, index));
  return index;
}

/* Test sessions pass this stand-in request; it is never handed to libfuse. */
#define FAKE_REQ ((fuse_req_t)(uintptr_t)0x10)
static session_t *g_inject_session;
#define SESSION(req) ((req) == FAKE_REQ ? g_inject_session : (session_t *)fuse_req_userdata(req))
#define SCOPE_OPEN(s)        \
  napi_handle_scope hs_;     \
  napi_open_handle_scope((s)->env, &hs_)
#define SCOPE_CLOSE(s) napi_close_handle_scope((s)->env, hs_)

static napi_value ino_value(napi_env env, uint64_t ino) {
  napi_value out;
  if (ino <= (uint64_t)MAX_SAFE) napi_create_double(env, (double)ino, &out);
  else napi_create_bigint_uint64(env, ino, &out);
  return out;
}

static napi_value fh_value(napi_env env, const struct fuse_file_info *fi) {
  if (!fi) return num(env, -1);
  return ino_value(env, fi->fh);
}

static napi_value off_value(napi_env env, off_t off) {
  return num(env, (double)off);
}

/* ------------------------------------------------------------------------------------------------ */
/* Low-level operations                                                                               */

static void interrupt_cb(fuse_req_t req, void *data) {
  session_t *s = SESSION(req);
  double id = (double)(uintptr_t)data;
  if (s->nintr == s->cap_intr) {
    uint32_t cap = s->cap_intr ? s->cap_intr * 2 : 16;
    double *n = realloc(s->intr_ids, cap * sizeof(double));
    if (!n) return;
    s->intr_ids = n;
    s->cap_intr = cap;
  }
  s->intr_ids[s->nintr++] = id;
}

/* Hands the interrupts collected while processing a request to JavaScript. */
static void deliver_interrupts(session_t *s) {
  for (uint32_t i = 0; i < s->nintr; i++) {
    uint32_t index = slot_find(s, s->intr_ids[i]);
    if (index == UINT32_MAX) continue;
    s->slots[index].interrupted = 1;
    s->requests[OP_INTERRUPT]++;
    SCOPE_OPEN(s);
    napi_value argv[2] = { num(s->env, OP_INTERRUPT), num(s->env, s->intr_ids[i]) };
    call_dispatch(s, 2, argv);
    SCOPE_CLOSE(s);
  }
  s->nintr = 0;
}

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  session_t *s = userdata;
  s->capable = conn->capable;
  conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (s->want_readdirplus && (conn->capable & FUSE_CAP_READDIRPLUS)) {
    conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
  } else {
    conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  }
  if (s->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
  if (s->max_write) conn->max_write = s->max_write; /* libfuse clamps to its receive buffer */
  if (s->max_readahead) conn->max_readahead = s->max_readahead;
  if (s->max_background) conn->max_background = s->max_background;
  if (s->congestion_threshold) conn->congestion_threshold = s->congestion_threshold;
  conn->time_gran = 1;
  s->want = conn->want;
  s->requests[OP_INIT]++;
  SCOPE_OPEN(s);
  napi_value argv[7] = {
    num(s->env, OP_INIT), num(s->env, 0), num(s->env, conn->proto_major), num(s->env, conn->proto_minor),
    num(s->env, conn->capable), num(s->env, conn->want), num(s->env, conn->max_write),
  };
  call_dispatch(s, 7, argv);
  SCOPE_CLOSE(s);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[4];
  if (decode_name(s->env, name, 1, &argv[3])) {
    s->requests[OP_LOOKUP]++;
    send_err(s, req, ENOENT);
  } else if (begin(s, req, OP_LOOKUP, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, parent);
    call_dispatch(s, 4, argv);
  }
  SCOPE_CLOSE(s);
}

static void forget_one(session_t *s, fuse_ino_t ino, uint64_t nlookup) {
  napi_value argv[4] = { num(s->env, OP_FORGET), num(s->env, 0), ino_value(s->env, ino), num(s->env, (double)nlookup) };
  call_dispatch(s, 4, argv);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  session_t *s = SESSION(req);
  s->requests[OP_FORGET]++;
  if (!s->test_mode) fuse_reply_none(req);
  SCOPE_OPEN(s);
  forget_one(s, ino, nlookup);
  SCOPE_CLOSE(s);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  session_t *s = SESSION(req);
  s->requests[OP_FORGET]++;
  for (size_t i = 0; i < count; i++) {
    SCOPE_OPEN(s);
    forget_one(s, forgets[i].ino, forgets[i].nlookup);
    SCOPE_CLOSE(s);
  }
  if (!s->test_mode) fuse_reply_none(req);
}

/* Requests whose arguments are (ino) or (ino, fh): getattr, readlink, open, opendir, statfs, ... */
static void simple(fuse_req_t req, int op, fuse_ino_t ino, size_t (*extra)(session_t *, void *, napi_value *), void *ctx) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[12];
  uint32_t index = begin(s, req, op, argv);
  if (index != UINT32_MAX) {
    argv[2] = ino_value(s->env, ino);
    size_t argc = 3;
    if (extra) {
      napi_value *more = argv + 3;
      argc += extra(s, ctx, more);
    }
    call_dispatch(s, argc, argv);
  }
  SCOPE_CLOSE(s);
}

typedef struct { const struct fuse_file_info *fi; double a, b, c; } fi_ctx;

static size_t fi_fh(session_t *s, void *ctx, napi_value *out) {
  fi_ctx *c = ctx;
  out[0] = fh_value(s->env, c->fi);
  return 1;
}
static size_t fi_fh_a(session_t *s, void *ctx, napi_value *out) {
  fi_ctx *c = ctx;
  out[0] = fh_value(s->env, c->fi);
  out[1] = num(s->env, c->a);
  return 2;
}
static size_t fi_flags(session_t *s, void *ctx, napi_value *out) {
  fi_ctx *c = ctx;
  out[0] = num(s->env, c->fi ? c->fi->flags : 0);
  return 1;
}
static size_t only_a(session_t *s, void *ctx, napi_value *out) {
  fi_ctx *c = ctx;
  out[0] = num(s->env, c->a);
  return 1;
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, 0, 0, 0 };
  simple(req, OP_GETATTR, ino, fi_fh, &c);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[13];
  if (begin(s, req, OP_SETATTR, argv) != UINT32_MAX) {
    napi_env env = s->env;
    argv[2] = ino_value(env, ino);
    argv[3] = num(env, to_set);
    argv[4] = fh_value(env, fi);
    argv[5] = num(env, attr->st_mode);
    argv[6] = num(env, attr->st_uid);
    argv[7] = num(env, attr->st_gid);
    argv[8] = off_value(env, attr->st_size);
    argv[9] = num(env, (double)attr->st_atim.tv_sec);
    argv[10] = num(env, (double)attr->st_atim.tv_nsec);
    argv[11] = num(env, (double)attr->st_mtim.tv_sec);
    argv[12] = num(env, (double)attr->st_mtim.tv_nsec);
    call_dispatch(s, 13, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { simple(req, OP_READLINK, ino, NULL, NULL); }

/* Requests with (parent, name[, a[, b]]): mknod, mkdir, unlink, rmdir, create. */
static void named(fuse_req_t req, int op, fuse_ino_t parent, const char *name, int nextra, double a, double b) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[6];
  napi_value nm;
  if (decode_name(s->env, name, 1, &nm)) {
    s->requests[op]++;
    send_err(s, req, (op == OP_UNLINK || op == OP_RMDIR) ? ENOENT : EINVAL);
  } else if (begin(s, req, op, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, parent);
    argv[3] = nm;
    if (nextra > 0) argv[4] = num(s->env, a);
    if (nextra > 1) argv[5] = num(s->env, b);
    call_dispatch(s, 4 + (size_t)nextra, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  named(req, OP_MKNOD, parent, name, 2, mode, (double)rdev);
}
static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  named(req, OP_MKDIR, parent, name, 1, mode, 0);
}
static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { named(req, OP_UNLINK, parent, name, 0, 0, 0); }
static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) { named(req, OP_RMDIR, parent, name, 0, 0, 0); }

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[5], nm, target;
  if (decode_name(s->env, name, 1, &nm) || decode_name(s->env, link, 0, &target)) {
    s->requests[OP_SYMLINK]++;
    send_err(s, req, EINVAL);
  } else if (begin(s, req, OP_SYMLINK, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, parent);
    argv[3] = nm;
    argv[4] = target;
    call_dispatch(s, 5, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[7], a, b;
  if (decode_name(s->env, name, 1, &a)) {
    s->requests[OP_RENAME]++;
    send_err(s, req, ENOENT);
  } else if (decode_name(s->env, newname, 1, &b)) {
    s->requests[OP_RENAME]++;
    send_err(s, req, EINVAL);
  } else if (begin(s, req, OP_RENAME, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, parent);
    argv[3] = a;
    argv[4] = ino_value(s->env, newparent);
    argv[5] = b;
    argv[6] = num(s->env, flags);
    call_dispatch(s, 7, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  session_t *s = SESSION(req);
  SCOPE_OPEN(s);
  napi_value argv[5], nm;
  if (decode_name(s->env, newname, 1, &nm)) {
    s->requests[OP_LINK]++;
    send_err(s, req, EINVAL);
  } else if (begin(s, req, OP_LINK, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, ino);
    argv[3] = ino_value(s->env, newparent);
    argv[4] = nm;
    call_dispatch(s, 5, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, 0, 0, 0 };
  simple(req, OP_OPEN, ino, fi_flags, &c);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = SESSION(req);
  if (off < 0 || (double)off + (double)size > MAX_SAFE || size > UINT32_MAX) {
    s->requests[OP_READ]++;
    send_err(s, req, off < 0 ? EINVAL : EFBIG);
    return;
  }
  SCOPE_OPEN(s);
  napi_value argv[6];
  uint32_t index = begin(s, req, OP_READ, argv);
  if (index != UINT32_MAX) {
    s->slots[index].size = (uint32_t)size;
    argv[2] = ino_value(s->env, ino);
    argv[3] = fh_value(s->env, fi);
    argv[4] = num(s->env, (double)size);
    argv[5] = off_value(s->env, off);
    call_dispatch(s, 6, argv);
  }
  SCOPE_CLOSE(s);
}

/*
 * Receive blocks. The kernel needs room for the largest write (max_write) plus the request headers;
 * libfuse's own buffer has one page more than max_write for them (FUSE_BUFFER_HEADER_SIZE).
 */
#define RECV_HEADROOM 4096
#define WRITE_BUFFER_MIN (64 * 1024)

static size_t recv_size_for(unsigned max_write) {
  size_t mw = max_write ? max_write : (size_t)256 * (size_t)sysconf(_SC_PAGESIZE); /* libfuse's default */
  size_t n = mw + RECV_HEADROOM;
  return n < 8192 ? 8192 : n; /* FUSE_MIN_READ_BUFFER */
}

/*
 * Makes sure there is a block to read the next request into: one from the JavaScript pool
 * (writeBuffer(recv_size) must return exactly that many bytes), else a malloc'd one. Returns 0 when
 * there is one. Leaves no pending exception.
 */
static int ensure_recv_block(session_t *s) {
  if (s->recv_mem) return 0;
  if (s->write_buffer_ref) {
    napi_env env = s->env;
    napi_value fn = NULL, recv, arg, result = NULL;
    bool is_buffer = false;
    void *p = NULL;
    size_t len = 0;
    SCOPE_OPEN(s);
    int ok = napi_get_reference_value(env, s->write_buffer_ref, &fn) == napi_ok && fn;
    if (ok) {
      napi_get_undefined(env, &recv);
      napi_create_double(env, (double)s->recv_size, &arg);
      if (napi_call_function(env, recv, fn, 1, &arg, &result) != napi_ok) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
        ok = 0;
      }
    }
    ok = ok && napi_is_buffer(env, result, &is_buffer) == napi_ok && is_buffer &&
         napi_get_buffer_info(env, result, &p, &len) == napi_ok && p && len == s->recv_size &&
         napi_create_reference(env, result, 1, &s->recv_ref) == napi_ok;
    SCOPE_CLOSE(s);
    if (ok) {
      s->recv_mem = p;
      s->recv_len = len;
      return 0;
    }
    s->recv_ref = NULL;
  }
  s->recv_mem = malloc(s->recv_size);
  s->recv_len = s->recv_mem ? s->recv_size : 0;
  return s->recv_mem ? 0 : -1;
}

/* Drops the session's hold on the receive block (a JavaScript one is then JavaScript's alone). */
static void drop_recv_block(session_t *s) {
  if (s->recv_ref) napi_delete_reference(s->env, s->recv_ref);
  else free(s->recv_mem);
  s->recv_ref = NULL;
  s->recv_mem = NULL;
  s->recv_len = 0;
}

/*
 * Write data that lies in a JavaScript receive block: a Uint8Array view of it, and the block is
 * JavaScript's from now on (the next request is read into another one). Returns 0 when it made one.
 */
static int view_of_recv_block(session_t *s, const char *buf, size_t size, napi_value *out) {
  if (!s->recv_ref || size < WRITE_BUFFER_MIN || buf < s->recv_mem || (size_t)(buf - s->recv_mem) > s->recv_len ||
      size > s->recv_len - (size_t)(buf - s->recv_mem))
    return -1;
  napi_env env = s->env;
  napi_value block, ab;
  napi_typedarray_type type;
  size_t len, off;
  void *data;
  if (napi_get_reference_value(env, s->recv_ref, &block) != napi_ok || !block ||
      napi_get_typedarray_info(env, block, &type, &len, &data, &ab, &off) != napi_ok || data != s->recv_mem ||
      napi_create_typedarray(env, napi_uint8_array, size, ab, off + (size_t)(buf - s->recv_mem), out) != napi_ok) {
    napi_value ignored;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &ignored);
    return -1;
  }
  drop_recv_block(s);
  return 0;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = SESSION(req);
  if (off < 0 || (double)off + (double)size > MAX_SAFE) {
    s->requests[OP_WRITE]++;
    send_err(s, req, off < 0 ? EINVAL : EFBIG);
    return;
  }
  SCOPE_OPEN(s);
  napi_value argv[7];
  /* Large data: a view of the pooled receive block it was read into. Small data: a copy (the
     block is reused for the next request). */
  void *copy = NULL;
  napi_value data;
  if (view_of_recv_block(s, buf, size, &data) && napi_create_buffer_copy(s->env, size, buf, &copy, &data) != napi_ok) {
    s->requests[OP_WRITE]++;
    send_err(s, req, ENOMEM);
  } else if (begin(s, req, OP_WRITE, argv) != UINT32_MAX) {
    argv[2] = ino_value(s->env, ino);
    argv[3] = fh_value(s->env, fi);
    argv[4] = data;
    argv[5] = off_value(s->env, off);
    argv[6] = num(s->env, fi && fi->writepage ? 1 : 0);
    call_dispatch(s, 7, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, 0, 0, 0 };
  simple(req, OP_FLUSH, ino, fi_fh, &c);
}
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, fi ? fi->flags : 0, 0, 0 };
  simple(req, OP_RELEASE, ino, fi_fh_a, &c);
}
static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  fi_ctx c = { fi, datasync, 0, 0 };
  simple(req, OP_FSYNC, ino, fi_fh_a, &c);
}
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, 0, 0, 0 };
  simple(req, OP_OPENDIR, ino, fi_flags, &c);
}

static void dir_read(fuse_req_t req, int op, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = SESSION(req);
  if (off < 0 || size > (1u << 24)) {
    s->requests[op]++;
    send_err(s, req, EINVAL);
    return;
  }
  SCOPE_OPEN(s);
  napi_value argv[6];
  uint32_t index = begin(s, req, op, argv);
  if (index != UINT32_MAX) {
    s->slots[index].size = (uint32_t)size;
    argv[2] = ino_value(s->env, ino);
    argv[3] = fh_value(s->env, fi);
    argv[4] = num(s->env, (double)size);
    argv[5] = off_value(s->env, off);
    call_dispatch(s, 6, argv);
  }
  SCOPE_CLOSE(s);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  dir_read(req, OP_READDIR, ino, size, off, fi);
}
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  dir_read(req, OP_READDIRPLUS, ino, size, off, fi);
}
static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fi_ctx c = { fi, 0, 0, 0 };
  simple(req, OP_RELEASEDIR, ino, fi_fh, &c);
}
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  fi_ctx c = { fi, datasync, 0, 0 };
  simple(req, OP_FSYNCDIR, ino, fi_fh_a, &c);
}
static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { simple(req, OP_STATFS, ino, NULL, NULL); }
static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  fi_ctx c = { NULL, mask, 0, 0 };
  simple(req, OP_ACCESS, ino, only_a, &c);
}
static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  named(req, OP_CREATE, parent, name, 2, mode, fi->flags);
}

static const struct fuse_lowlevel_ops LL_OPS = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .readdirplus = ll_readdirplus,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .access = ll_access,
  .create = ll_create,
};

/* ------------------------------------------------------------------------------------------------ */
/* The event loop side                                                                                */

static void session_unref(session_t *s);

static void stop_polling(session_t *s) {
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = 0;
  }
}

static void on_ended(session_t *s, int err) {
  if (s->ended) return;
  s->ended = 1;
  stop_polling(s);
  napi_value argv[3] = { num(s->env, OP_ENDED), num(s->env, 0), num(s->env, err) };
  call_dispatch(s, 3, argv);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  session_t *s = handle->data;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_callback_scope cscope;
  napi_value resource;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, s->resource_ref, &resource);
  napi_open_callback_scope(env, resource, s->actx, &cscope);
  if (status < 0) {
    on_ended(s, -status);
  } else {
    /* Reads as fuse_session_receive_buf does without splice, but into our block (see recv_mem). */
    for (int i = 0; i < BATCH && !s->ended && !s->closed; i++) {
      if (ensure_recv_block(s)) {
        on_ended(s, ENOMEM);
        break;
      }
      ssize_t res = read(s->fd, s->recv_mem, s->recv_len);
      int err = res < 0 ? errno : 0;
      if (err == EAGAIN) break;
      if (err == EINTR || err == ENOENT) continue; /* ENOENT: the request was interrupted */
      if (err == ENODEV) fuse_session_exit(s->se); /* unmounted, or the connection was aborted */
      if (res <= 0 || fuse_session_exited(s->se)) {
        on_ended(s, err == ENODEV ? 0 : err);
        break;
      }
      if ((size_t)res < 40) { /* sizeof(struct fuse_in_header), a fixed part of the protocol */
        on_ended(s, EIO);
        break;
      }
      struct fuse_buf fb;
      memset(&fb, 0, sizeof fb);
      fb.mem = s->recv_mem;
      fb.size = (size_t)res;
      fuse_session_process_buf(s->se, &fb);
      if (s->nintr) deliver_interrupts(s);
    }
  }
  napi_close_callback_scope(env, cscope);
  napi_close_handle_scope(env, scope);
}

static void on_poll_closed(uv_handle_t *handle) {
  session_t *s = handle->data;
  if (s->se) {
    fuse_session_destroy(s->se);
    s->se = NULL;
  }
  session_unref(s);
}

static void release_resources(session_t *s) {
  napi_env env = s->env;
  if (s->dispatch_ref) napi_delete_reference(env, s->dispatch_ref);
  if (s->scratch_ref) napi_delete_reference(env, s->scratch_ref);
  if (s->write_buffer_ref) napi_delete_reference(env, s->write_buffer_ref);
  if (s->recv_ref) drop_recv_block(s);
  if (s->resource_ref) napi_delete_reference(env, s->resource_ref);
  if (s->actx) napi_async_destroy(env, s->actx);
  s->dispatch_ref = s->scratch_ref = s->resource_ref = s->write_buffer_ref = NULL;
  s->actx = NULL;
}

static void session_free(session_t *s) {
  if (!s->recv_ref) free(s->recv_mem); /* a JavaScript block is the garbage collector's */
  free(s->slots);
  free(s->intr_ids);
  free(s);
}

static void session_unref(session_t *s) {
  if (--s->refs == 0) session_free(s);
}

static void cleanup_hook(void *arg);

/* Detaches the mount; the auto_unmount guard then has nothing left to watch. */
static void unmount_session(session_t *s) {
  fuse_session_unmount(s->se);
  s->unmounted = 1;
  if (s->guard_fd >= 0) {
    close(s->guard_fd);
    s->guard_fd = -1;
  }
}

/*
 * Ends the session: answers what is still waiting with EIO, detaches the mount (lazily, if it is still
 * there) and closes the device. The session object stays valid (replies return false).
 */
static void session_close(session_t *s, int from_cleanup) {
  if (s->closed) return;
  s->closed = 1;
  s->ended = 1;
  stop_polling(s);
  fail_all(s, EIO);
  if (s->cleanup_hook && !from_cleanup) napi_remove_env_cleanup_hook(s->env, cleanup_hook, s);
  s->cleanup_hook = 0;
  if (s->se && !s->unmounted) unmount_session(s);
  if (!from_cleanup) release_resources(s);
  if (s->poll_inited) {
    s->poll_inited = 0;
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
  } else {
    if (s->se) {
      fuse_session_destroy(s->se);
      s->se = NULL;
    }
    session_unref(s);
  }
}

/* The process is exiting (environment teardown) with the session still open: detach the mount. */
static void cleanup_hook(void *arg) {
  session_t *s = arg;
  s->cleanup_hook = 0;
  if (s->se && !s->unmounted) {
    stop_polling(s);
    unmount_session(s);
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Session methods                                                                                    */

static void wrap_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  session_unref(data);
}

static session_t *this_session(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok || !data) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a fuse3 session");
    return NULL;
  }
  return data;
}

/*
 * Common start of every reply: the session, the live slot (UINT32_MAX when the request is already
 * answered or unknown: the method returns false), and a check that this kind of reply fits the op.
 */
typedef struct {
  session_t *s;
  uint32_t index;
  fuse_req_t req;
  int done; /* 1: return `result` right away */
  napi_value result;
} reply_ctx;

static reply_ctx reply_begin(napi_env env, napi_callback_info info, size_t want_argc, napi_value *argv, int kind) {
  reply_ctx r = { NULL, UINT32_MAX, NULL, 1, NULL };
  size_t argc = want_argc;
  session_t *s = this_session(env, info, &argc, argv);
  if (!s) return r;
  r.s = s;
  double id;
  if (argc < 1 || get_double(env, argv[0], &id)) {
    throw_type(env, "request id must be a number");
    return r;
  }
  for (size_t i = argc; i < want_argc; i++) napi_get_undefined(env, &argv[i]);
  uint32_t index = slot_find(s, id);
  if (index == UINT32_MAX) {
    s->replies_dropped++;
    r.result = boolean(env, false);
    return r;
  }
  if (!(allowed_replies(s->slots[index].op) & kind)) {
    fail_slot(s, index, EIO);
    napi_throw_error(env, "ERR_FUSE3_REPLY", "this reply does not fit the request's operation (answered EIO)");
    return r;
  }
  r.index = index;
  r.req = s->slots[index].req;
  r.done = 0;
  return r;
}

/* Frees the slot before sending, so a reply is never sent twice even if sending calls back. */
static fuse_req_t reply_take(reply_ctx *r) {
  fuse_req_t req = r->req;
  slot_free(r->s, r->index);
  return req;
}

static napi_value reply_invalid(napi_env env, reply_ctx *r, const char *msg) {
  fail_slot(r->s, r->index, EIO);
  char full[256];
  snprintf(full, sizeof full, "%s (the request was answered with EIO)", msg);
  napi_throw_type_error(env, "ERR_INVALID_ARG", full);
  return NULL;
}

static int fill_stat(struct stat *st, const double *a) {
  memset(st, 0, sizeof *st);
  if (!is_int_in(a[A_INO], 0, MAX_SAFE) || !is_int_in(a[A_MODE], 0, 0xffff) || !is_int_in(a[A_NLINK], 0, 4294967295.0) ||
      !is_int_in(a[A_UID], 0, 4294967295.0) || !is_int_in(a[A_GID], 0, 4294967295.0) || !is_int_in(a[A_SIZE], 0, MAX_SAFE) ||
      !is_int_in(a[A_BLOCKS], 0, MAX_SAFE) || !is_int_in(a[A_BLKSIZE], 0, 1 << 30))
    return -1;
  const double tmax = 1e15;
  if (!is_int_in(a[A_ATIME_S], -tmax, tmax) || !is_int_in(a[A_MTIME_S], -tmax, tmax) || !is_int_in(a[A_CTIME_S], -tmax, tmax) ||
      !is_int_in(a[A_ATIME_NS], 0, 999999999) || !is_int_in(a[A_MTIME_NS], 0, 999999999) || !is_int_in(a[A_CTIME_NS], 0, 999999999))
    return -1;
  st->st_ino = (ino_t)a[A_INO];
  st->st_mode = (mode_t)a[A_MODE];
  st->st_nlink = (nlink_t)a[A_NLINK];
  st->st_uid = (uid_t)a[A_UID];
  st->st_gid = (gid_t)a[A_GID];
  st->st_size = (off_t)a[A_SIZE];
  st->st_blocks = (blkcnt_t)a[A_BLOCKS];
  st->st_blksize = (blksize_t)a[A_BLKSIZE];
  st->st_atim.tv_sec = (time_t)a[A_ATIME_S];
  st->st_atim.tv_nsec = (long)a[A_ATIME_NS];
  st->st_mtim.tv_sec = (time_t)a[A_MTIME_S];
  st->st_mtim.tv_nsec = (long)a[A_MTIME_NS];
  st->st_ctim.tv_sec = (time_t)a[A_CTIME_S];
  st->st_ctim.tv_nsec = (long)a[A_CTIME_NS];
  return 0;
}

static int get_timeout(napi_env env, napi_value v, double *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined) {
    *out = 1.0;
    return 0;
  }
  return get_double(env, v, out) || *out < 0 || *out > 1e9 ? -1 : 0;
}

/* replyErr(id, errno): errno 0 is success for ops without data (unlink, flush, release, ...). */
static napi_value m_reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t err;
  size_t argc = 2;
  /* Peek at errno first to pick the reply kind. */
  session_t *s0 = this_session(env, info, &argc, argv);
  if (!s0) return NULL;
  if (argc < 2 || get_int_range(env, argv[1], 0, 4095, &err)) {
    /* Answer the request anyway so the kernel does not wait forever. */
    double id;
    if (argc >= 1 && !get_double(env, argv[0], &id)) {
      uint32_t index = slot_find(s0, id);
      if (index != UINT32_MAX) fail_slot(s0, index, EIO);
    }
    return throw_type(env, "errno must be an integer in 0..4095 (the request was answered with EIO)");
  }
  reply_ctx r = reply_begin(env, info, 2, argv, err ? RK_ERR : RK_OK);
  if (r.done) return r.result;
  fuse_req_t req = reply_take(&r);
  send_err(r.s, req, (int)err);
  return boolean(env, true);
}

/* replyEntry(id, entryTimeout, attrTimeout): the attributes are in scratch[0..13]; ino 0 = negative entry. */
static napi_value m_reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  reply_ctx r = reply_begin(env, info, 3, argv, RK_ENTRY);
  if (r.done) return r.result;
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  if (fill_stat(&e.attr, r.s->scratch)) return reply_invalid(env, &r, "invalid attributes");
  if (get_timeout(env, argv[1], &e.entry_timeout) || get_timeout(env, argv[2], &e.attr_timeout))
    return reply_invalid(env, &r, "invalid timeout");
  e.ino = e.attr.st_ino;
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_ENTRY, 0, (double)e.ino);
  else fuse_reply_entry(req, &e);
  return boolean(env, true);
}

/* replyAttr(id, attrTimeout): attributes in scratch[0..13]. */
static napi_value m_reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  reply_ctx r = reply_begin(env, info, 2, argv, RK_ATTR);
  if (r.done) return r.result;
  struct stat st;
  double timeout;
  if (fill_stat(&st, r.s->scratch)) return reply_invalid(env, &r, "invalid attributes");
  if (get_timeout(env, argv[1], &timeout)) return reply_invalid(env, &r, "invalid timeout");
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_ATTR, 0, (double)st.st_size);
  else fuse_reply_attr(req, &st, timeout);
  return boolean(env, true);
}

/* replyReadlink(id, target) */
static napi_value m_reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  reply_ctx r = reply_begin(env, info, 2, argv, RK_READLINK);
  if (r.done) return r.result;
  char target[NAME_MAX_BYTES * 4 + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], target, sizeof target, &len) != napi_ok || len == 0 ||
      len >= sizeof target - 1 || strlen(target) != len)
    return reply_invalid(env, &r, "readlink target must be a non-empty string without NUL");
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_READLINK, 0, (double)len);
  else fuse_reply_readlink(req, target);
  return boolean(env, true);
}

static int open_info(napi_env env, napi_value fhv, napi_value flagsv, struct fuse_file_info *fi) {
  uint64_t fh;
  int64_t flags = 0;
  napi_valuetype t;
  memset(fi, 0, sizeof *fi);
  if (get_index(env, fhv, &fh)) return -1;
  napi_typeof(env, flagsv, &t);
  if (t != napi_undefined && get_int_range(env, flagsv, 0, 31, &flags)) return -1;
  fi->fh = fh;
  fi->direct_io = (flags & OF_DIRECT_IO) != 0;
  fi->keep_cache = (flags & OF_KEEP_CACHE) != 0;
  fi->nonseekable = (flags & OF_NONSEEKABLE) != 0;
  fi->cache_readdir = (flags & OF_CACHE_READDIR) != 0;
  fi->noflush = (flags & OF_NOFLUSH) != 0;
  return 0;
}

/* replyOpen(id, fh, flags) */
static napi_value m_reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  reply_ctx r = reply_begin(env, info, 3, argv, RK_OPEN);
  if (r.done) return r.result;
  struct fuse_file_info fi;
  if (open_info(env, argv[1], argv[2], &fi)) return reply_invalid(env, &r, "invalid file handle or open flags");
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_OPEN, 0, (double)fi.fh);
  else fuse_reply_open(req, &fi);
  return boolean(env, true);
}

/* replyCreate(id, fh, flags, entryTimeout, attrTimeout): attributes in scratch. */
static napi_value m_reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  reply_ctx r = reply_begin(env, info, 5, argv, RK_CREATE);
  if (r.done) return r.result;
  struct fuse_file_info fi;
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  if (open_info(env, argv[1], argv[2], &fi)) return reply_invalid(env, &r, "invalid file handle or open flags");
  if (fill_stat(&e.attr, r.s->scratch) || e.attr.st_ino == 0) return reply_invalid(env, &r, "invalid attributes");
  if (get_timeout(env, argv[3], &e.entry_timeout) || get_timeout(env, argv[4], &e.attr_timeout))
    return reply_invalid(env, &r, "invalid timeout");
  e.ino = e.attr.st_ino;
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_CREATE, 0, (double)fi.fh);
  else fuse_reply_create(req, &e, &fi);
  return boolean(env, true);
}

/* One Buffer or Uint8Array: its bytes. Returns false for anything else. */
static bool bytes_of(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buf = false, is_ta = false;
  napi_is_buffer(env, v, &is_buf);
  if (is_buf) return napi_get_buffer_info(env, v, data, len) == napi_ok;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) return false;
  napi_typedarray_type type;
  size_t n, byte_off;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &n, data, &ab, &byte_off) != napi_ok || type != napi_uint8_array) return false;
  *len = n;
  return true;
}

#define REPLY_IOV_MAX 64

/*
 * replyBuf(id, data[, length]): read data (at most what was asked for). `data` is one Buffer or
 * Uint8Array, or an array of them (up to 64) sent as one reply without joining them first.
 */
static napi_value m_reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  reply_ctx r = reply_begin(env, info, 3, argv, RK_BUF);
  if (r.done) return r.result;
  struct iovec iov[REPLY_IOV_MAX];
  size_t count = 0, len = 0;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (is_array) {
    uint32_t n = 0;
    napi_get_array_length(env, argv[1], &n);
    if (n > REPLY_IOV_MAX) return reply_invalid(env, &r, "read data has too many parts");
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      if (napi_get_element(env, argv[1], i, &el) != napi_ok || !bytes_of(env, el, &iov[count].iov_base, &iov[count].iov_len))
        return reply_invalid(env, &r, "read data must be a Buffer or Uint8Array");
      len += iov[count].iov_len;
      if (iov[count].iov_len) count++;
    }
  } else {
    if (!bytes_of(env, argv[1], &iov[0].iov_base, &iov[0].iov_len)) return reply_invalid(env, &r, "read data must be a Buffer or Uint8Array");
    len = iov[0].iov_len;
    count = len ? 1 : 0;
  }
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_undefined) {
    uint64_t want;
    if (get_index(env, argv[2], &want) || want > len) return reply_invalid(env, &r, "invalid length");
    len = (size_t)want;
  }
  if (len > r.s->slots[r.index].size) len = r.s->slots[r.index].size;
  /* Trim the parts to `len`. */
  size_t left = len, used = 0;
  while (used < count && left) {
    if (iov[used].iov_len > left) iov[used].iov_len = left;
    left -= iov[used].iov_len;
    used++;
  }
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_BUF, 0, (double)len);
  else if (used <= 1) fuse_reply_buf(req, used ? iov[0].iov_base : NULL, len);
  else fuse_reply_iov(req, iov, (int)used);
  return boolean(env, true);
}

/* replyWrite(id, count) */
static napi_value m_reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  reply_ctx r = reply_begin(env, info, 2, argv, RK_WRITE);
  if (r.done) return r.result;
  int64_t count;
  if (get_int_range(env, argv[1], 0, 4294967295.0, &count)) return reply_invalid(env, &r, "invalid write count");
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_WRITE, 0, (double)count);
  else fuse_reply_write(req, (size_t)count);
  return boolean(env, true);
}

/* replyStatfs(id): scratch[0..10]. */
static napi_value m_reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reply_ctx r = reply_begin(env, info, 1, argv, RK_STATFS);
  if (r.done) return r.result;
  const double *a = r.s->scratch;
  for (int i = 0; i < F_COUNT; i++) {
    if (!is_int_in(a[i], 0, 18446744073709551615.0)) return reply_invalid(env, &r, "invalid statfs values");
  }
  struct statvfs v;
  memset(&v, 0, sizeof v);
  v.f_bsize = (unsigned long)a[F_BSIZE];
  v.f_frsize = (unsigned long)a[F_FRSIZE];
  v.f_blocks = (fsblkcnt_t)a[F_BLOCKS];
  v.f_bfree = (fsblkcnt_t)a[F_BFREE];
  v.f_bavail = (fsblkcnt_t)a[F_BAVAIL];
  v.f_files = (fsfilcnt_t)a[F_FILES];
  v.f_ffree = (fsfilcnt_t)a[F_FFREE];
  v.f_favail = (fsfilcnt_t)a[F_FAVAIL];
  v.f_fsid = (unsigned long)a[F_FSID];
  v.f_flag = (unsigned long)a[F_FLAG];
  v.f_namemax = (unsigned long)a[F_NAMEMAX];
  fuse_req_t req = reply_take(&r);
  if (r.s->test_mode) test_record(r.s, RK_STATFS, 0, (double)v.f_namemax);
  else fuse_reply_statfs(req, &v);
  return boolean(env, true);
}

/* Test mode stand-in for fuse_add_direntry(_plus): a record of 24 bytes + name, 8-byte aligned. */
static size_t test_direntry(char *buf, size_t bufsize, const char *name, size_t namelen, off_t off) {
  size_t need = (24 + namelen + 7) & ~(size_t)7;
  if (need <= bufsize) {
    memset(buf, 0, need);
    memcpy(buf, &off, sizeof off);
    memcpy(buf + 24, name, namelen);
  }
  return need;
}

/*
 * replyDir(id, names, attrs, start, entryTimeout, attrTimeout) -> number of entries sent.
 * names[i] with attrs[i * 14 ...]; entries from `start` on are packed until the kernel's buffer is
 * full; entry i gets offset i + 1 (the kernel passes it back to continue). For readdirplus an entry
 * with mode 0 or attrs[i * 15 + 14] == 0 is sent without attributes (the kernel looks it up) and
 * takes no lookup reference; every other entry except "." and ".." takes one, so the caller counts a
 * lookup for those.
 */
static napi_value m_reply_dir(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  reply_ctx r = reply_begin(env, info, 6, argv, RK_DIR);
  if (r.done) return r.result;
  session_t *s = r.s;
  int plus = s->slots[r.index].op == OP_READDIRPLUS;
  size_t size = s->slots[r.index].size;
  bool is_array = false;
  uint32_t n = 0;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array || napi_get_array_length(env, argv[1], &n) != napi_ok) return reply_invalid(env, &r, "names must be an array");
  napi_typedarray_type type;
  size_t alen = 0, byte_off;
  void *adata = NULL;
  napi_value ab;
  bool is_ta = false;
  napi_is_typedarray(env, argv[2], &is_ta);
  if (!is_ta || napi_get_typedarray_info(env, argv[2], &type, &alen, &adata, &ab, &byte_off) != napi_ok ||
      type != napi_float64_array || alen < (size_t)n * A_STRIDE)
    return reply_invalid(env, &r, "attrs must be a Float64Array with 15 values per name");
  int64_t start;
  if (get_int_range(env, argv[3], 0, 4294967295.0, &start)) return reply_invalid(env, &r, "invalid start index");
  double entry_timeout, attr_timeout;
  if (get_timeout(env, argv[4], &entry_timeout) || get_timeout(env, argv[5], &attr_timeout))
    return reply_invalid(env, &r, "invalid timeout");
  char *buf = malloc(size ? size : 1);
  if (!buf) return reply_invalid(env, &r, "out of memory");
  const double *attrs = adata;
  size_t pos = 0;
  uint32_t packed = 0;
  char name[NAME_MAX_BYTES + 2];
  for (uint32_t i = (uint32_t)start; i < n; i++) {
    napi_value nv;
    size_t namelen = 0;
    napi_valuetype t;
    if (napi_get_element(env, argv[1], i, &nv) != napi_ok || napi_typeof(env, nv, &t) != napi_ok || t != napi_string ||
        napi_get_value_string_utf8(env, nv, name, sizeof name, &namelen) != napi_ok || namelen == 0 ||
        namelen > NAME_MAX_BYTES || strlen(name) != namelen || memchr(name, '/', namelen)) {
      free(buf);
      return reply_invalid(env, &r, "directory entry names must be non-empty strings without '/' or NUL");
    }
    struct stat st;
    if (fill_stat(&st, attrs + (size_t)i * A_STRIDE)) {
      free(buf);
      return reply_invalid(env, &r, "invalid directory entry attributes");
    }
    off_t next = (off_t)i + 1;
    size_t need;
    if (s->test_mode) {
      need = test_direntry(buf + pos, size - pos, name, namelen, next);
    } else if (plus) {
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      e.attr = st;
      e.ino = (st.st_mode & S_IFMT) && attrs[(size_t)i * A_STRIDE + A_ENTRY] != 0 ? st.st_ino : 0;
      e.entry_timeout = e.ino ? entry_timeout : 0;
      e.attr_timeout = e.ino ? attr_timeout : 0;
      need = fuse_add_direntry_plus(r.req, buf + pos, size - pos, name, &e, next);
    } else {
      need = fuse_add_direntry(r.req, buf + pos, size - pos, name, &st, next);
    }
    if (need > size - pos) break;
    pos += need;
    packed++;
  }
  fuse_req_t req = reply_take(&r);
  if (s->test_mode) test_record(s, RK_DIR, 0, (double)pos);
  else fuse_reply_buf(req, pos ? buf : NULL, pos);
  free(buf);
  return num(env, packed);
}

/* isPending(id) */
static napi_value m_is_pending(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  session_t *s = this_session(env, info, &argc, argv);
  if (!s) return NULL;
  double id;
  if (argc < 1 || get_double(env, argv[0], &id)) return boolean(env, false);
  return boolean(env, slot_find(s, id) != UINT32_MAX);
}

/* stats() -> { pending, maxPending, slots, repliesDropped, capable, want, requests: {op: n} } */
static napi_value m_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  session_t *s = this_session(env, info, &argc, NULL);
  if (!s) return NULL;
  napi_value out, reqs;
  NAPI_CALL(env, napi_create_object(env, &out));
  NAPI_CALL(env, napi_create_object(env, &reqs));
  napi_set_named_property(env, out, "pending", num(env, s->pending));
  napi_set_named_property(env, out, "maxPending", num(env, s->max_pending));
  napi_set_named_property(env, out, "slots", num(env, s->nslots));
  napi_set_named_property(env, out, "repliesDropped", num(env, s->replies_dropped));
  napi_set_named_property(env, out, "capable", num(env, s->capable));
  napi_set_named_property(env, out, "want", num(env, s->want));
  for (int i = 0; i < OP_COUNT; i++) napi_set_named_property(env, reqs, OP_NAMES[i], num(env, s->requests[i]));
  napi_set_named_property(env, out, "requests", reqs);
  return out;
}

/* close(): see session_close(). */
static napi_value m_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  session_t *s = this_session(env, info, &argc, NULL);
  if (!s) return NULL;
  session_close(s, 0);
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* Test mode: inject(op, ino, ...args) acts as if the kernel sent that request. */
static napi_value m_inject(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  size_t argc = 8;
  session_t *s = this_session(env, info, &argc, argv);
  if (!s) return NULL;
  if (!s->test_mode) return throw_type(env, "inject() is for test sessions only");
  int64_t op;
  uint64_t ino;
  if (argc < 2 || get_int_range(env, argv[0], 0, OP_COUNT - 1, &op) || get_index(env, argv[1], &ino))
    return throw_type(env, "inject(op, ino, ...)");
  double a = 0, b = 0;
  if (argc > 2) get_double(env, argv[2], &a);
  if (argc > 3) get_double(env, argv[3], &b);
  fuse_req_t fake = FAKE_REQ;
  g_inject_session = s;
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)(a < 0 ? 0 : a);
  int before = (int)s->pending;
  switch (op) {
    case OP_GETATTR: {
      fi_ctx c = { argc > 2 ? &fi : NULL, 0, 0, 0 };
      simple(fake, OP_GETATTR, ino, fi_fh, &c);
      break;
    }
    case OP_READ: {
      if (!(a >= 0 && a <= 0xffffffff && b >= 0 && b <= MAX_SAFE)) return throw_type(env, "inject(read, ino, size, off)");
      ll_read(fake, ino, (size_t)a, (off_t)b, &fi);
      break;
    }
    case OP_READDIR: case OP_READDIRPLUS: {
      if (!(a >= 0 && a <= (1 << 24) && b >= 0 && b <= MAX_SAFE)) return throw_type(env, "inject(readdir, ino, size, off)");
      dir_read(fake, (int)op, ino, (size_t)a, (off_t)b, &fi);
      break;
    }
    case OP_LOOKUP: case OP_MKDIR: case OP_UNLINK: {
      bool is_buf = false;
      void *data;
      size_t len;
      if (argc < 3 || napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf ||
          napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok)
        return throw_type(env, "inject(lookup, ino, nameBuffer)");
      char *name = malloc(len + 1);
      if (!name) return throw_type(env, "out of memory");
      memcpy(name, data, len);
      name[len] = 0;
      if (op == OP_LOOKUP) ll_lookup(fake, ino, name);
      else named(fake, (int)op, ino, name, op == OP_MKDIR ? 1 : 0, 0755, 0);
      free(name);
      break;
    }
    case OP_OPEN: case OP_CREATE: case OP_STATFS: case OP_WRITE: case OP_SETATTR: {
      if (op == OP_OPEN) ll_open(fake, ino, &fi);
      else if (op == OP_STATFS) ll_statfs(fake, ino);
      else if (op == OP_CREATE) named(fake, OP_CREATE, ino, "f", 2, 0644, 0);
      else if (op == OP_WRITE) {
        /* inject(write, ino, fh[, data]): data is placed in the receive block, as the kernel does. */
        bool is_buf = false;
        void *data;
        size_t len;
        if (argc > 3 && napi_is_buffer(env, argv[3], &is_buf) == napi_ok && is_buf &&
            napi_get_buffer_info(env, argv[3], &data, &len) == napi_ok) {
          const size_t at = 80; /* fuse_in_header + fuse_write_in */
          if (ensure_recv_block(s) || len > s->recv_len - at) return throw_type(env, "inject(write): data does not fit the receive block");
          memcpy(s->recv_mem + at, data, len);
          ll_write(fake, ino, s->recv_mem + at, len, 0, &fi);
        } else {
          ll_write(fake, ino, "abcd", 4, 0, &fi);
        }
      }
      else {
        struct stat st;
        memset(&st, 0, sizeof st);
        ll_setattr(fake, ino, &st, (int)a, NULL);
      }
      break;
    }
    case OP_FLUSH: ll_flush(fake, ino, &fi); break;
    case OP_INTERRUPT: {
      /* inject(interrupt, 0, id) */
      interrupt_cb(fake, (void *)(uintptr_t)a);
      deliver_interrupts(s);
      break;
    }
    default:
      return throw_type(env, "inject: op not supported in test mode");
  }
  (void)before;
  return num(env, s->pending);
}

/* Test mode: the last reply "sent": { kind, err, len }. */
static napi_value m_last_reply(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  session_t *s = this_session(env, info, &argc, NULL);
  if (!s) return NULL;
  napi_value out;
  NAPI_CALL(env, napi_create_object(env, &out));
  napi_set_named_property(env, out, "kind", num(env, s->test_last_kind));
  napi_set_named_property(env, out, "err", num(env, s->test_last_err));
  napi_set_named_property(env, out, "len", num(env, s->test_last_len));
  s->test_last_kind = 0;
  return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* Module functions                                                                                   */

static int get_uint_prop(napi_env env, napi_value obj, const char *name, unsigned *out) {
  napi_value v;
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 0;
  napi_get_named_property(env, obj, name, &v);
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined) return 0;
  int64_t x;
  if (get_int_range(env, v, 0, 4294967295.0, &x)) return -1;
  *out = (unsigned)x;
  return 0;
}

static int get_bool_prop(napi_env env, napi_value obj, const char *name, int *out) {
  napi_value v;
  bool has = false, b = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 0;
  napi_get_named_property(env, obj, name, &v);
  if (napi_coerce_to_bool(env, v, &v) != napi_ok || napi_get_value_bool(env, v, &b) != napi_ok) return -1;
  *out = b;
  return 0;
}

static napi_value make_session_object(napi_env env, session_t *s) {
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  static const struct { const char *name; napi_callback fn; } METHODS[] = {
    { "replyErr", m_reply_err }, { "replyEntry", m_reply_entry }, { "replyAttr", m_reply_attr },
    { "replyReadlink", m_reply_readlink }, { "replyOpen", m_reply_open }, { "replyCreate", m_reply_create },
    { "replyBuf", m_reply_buf }, { "replyWrite", m_reply_write }, { "replyStatfs", m_reply_statfs },
    { "replyDir", m_reply_dir }, { "isPending", m_is_pending }, { "stats", m_stats }, { "close", m_close },
    { "inject", m_inject }, { "lastReply", m_last_reply },
  };
  napi_property_descriptor props[sizeof METHODS / sizeof METHODS[0]];
  for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++) {
    memset(&props[i], 0, sizeof props[i]);
    props[i].utf8name = METHODS[i].name;
    props[i].method = METHODS[i].fn;
    props[i].attributes = napi_default;
  }
  NAPI_CALL(env, napi_define_properties(env, obj, sizeof METHODS / sizeof METHODS[0], props));
  NAPI_CALL(env, napi_wrap(env, obj, s, wrap_finalize, NULL, NULL));
  s->refs++;
  return obj;
}

/* Shared by mount() and testSession(): dispatch function, scratch array, options. */
static session_t *new_session(napi_env env, napi_value dispatch, napi_value scratch) {
  napi_valuetype t;
  if (napi_typeof(env, dispatch, &t) != napi_ok || t != napi_function) {
    throw_type(env, "dispatch must be a function");
    return NULL;
  }
  bool is_ta = false;
  napi_typedarray_type type;
  size_t len = 0, off;
  void *data = NULL;
  napi_value ab;
  napi_is_typedarray(env, scratch, &is_ta);
  if (!is_ta || napi_get_typedarray_info(env, scratch, &type, &len, &data, &ab, &off) != napi_ok ||
      type != napi_float64_array || len < SCRATCH_DOUBLES) {
    throw_type(env, "scratch must be a Float64Array of at least 64 values");
    return NULL;
  }
  session_t *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  s->env = env;
  s->fd = -1;
  s->guard_fd = -1;
  s->free_head = UINT32_MAX;
  s->scratch = data;
  s->refs = 1; /* the open session */
  napi_value resource, name;
  napi_create_reference(env, dispatch, 1, &s->dispatch_ref);
  napi_create_reference(env, scratch, 1, &s->scratch_ref);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &s->resource_ref);
  napi_create_string_utf8(env, "s3cryptfs:fuse3", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->actx);
  return s;
}

/*
 * mount(mountpoint, args: string[], options, dispatch, scratch, writeBuffer?) -> session
 * args are libfuse's (e.g. ["-o", "fsname=x,allow_other,auto_unmount"]); options:
 * { maxWrite, maxReadahead, maxBackground, congestionThreshold, writeback, readdirplus, debug };
 * writeBuffer(size) returns a Buffer of exactly `size` bytes for large write data (see copy_to_write_buffer).
 */
static napi_value m_mount(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  size_t argc = 6;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "mount(mountpoint, args, options, dispatch, scratch)");
  char mnt[4096];
  size_t mlen;
  if (napi_get_value_string_utf8(env, argv[0], mnt, sizeof mnt, &mlen) != napi_ok || mlen == 0 || mlen >= sizeof mnt - 1)
    return throw_type(env, "mountpoint must be a non-empty string");
  bool is_array = false;
  uint32_t nargs = 0;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "args must be an array of strings");
  napi_get_array_length(env, argv[1], &nargs);
  napi_valuetype ot;
  napi_typeof(env, argv[2], &ot);
  if (ot != napi_object) return throw_type(env, "options must be an object");

  unsigned max_write = 0, max_readahead = 0, max_background = 0, congestion = 0;
  int writeback = 0, readdirplus = 1, debug = 0;
  if (get_uint_prop(env, argv[2], "maxWrite", &max_write) || get_uint_prop(env, argv[2], "maxReadahead", &max_readahead) ||
      get_uint_prop(env, argv[2], "maxBackground", &max_background) ||
      get_uint_prop(env, argv[2], "congestionThreshold", &congestion) || get_bool_prop(env, argv[2], "writeback", &writeback) ||
      get_bool_prop(env, argv[2], "readdirplus", &readdirplus) || get_bool_prop(env, argv[2], "debug", &debug))
    return throw_type(env, "invalid mount options");

  struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
  if (fuse_opt_add_arg(&fargs, "s3cryptfs")) return throw_type(env, "out of memory");
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value v;
    char arg[4096];
    size_t alen;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, arg, sizeof arg, &alen) != napi_ok || alen >= sizeof arg - 1 || fuse_opt_add_arg(&fargs, arg)) {
      fuse_opt_free_args(&fargs);
      return throw_type(env, "args must be strings");
    }
  }

  napi_valuetype wt = napi_undefined;
  if (argc >= 6) napi_typeof(env, argv[5], &wt);
  if (wt != napi_undefined && wt != napi_function) {
    fuse_opt_free_args(&fargs);
    return throw_type(env, "writeBuffer must be a function");
  }
  session_t *s = new_session(env, argv[3], argv[4]);
  if (!s) {
    fuse_opt_free_args(&fargs);
    return NULL;
  }
  if (wt == napi_function) napi_create_reference(env, argv[5], 1, &s->write_buffer_ref);
  s->max_write = max_write;
  s->recv_size = recv_size_for(max_write);
  s->max_readahead = max_readahead;
  s->max_background = max_background;
  s->congestion_threshold = congestion;
  s->writeback = writeback;
  s->want_readdirplus = readdirplus;

  g_log[0] = 0;
  g_debug_log = debug;
  fuse_set_log_func(log_func);
  s->se = fuse_session_new(&fargs, &LL_OPS, sizeof LL_OPS, s);
  fuse_opt_free_args(&fargs);
  char msg[2300];
  if (!s->se) {
    snprintf(msg, sizeof msg, "fuse_session_new failed: %s", g_log[0] ? g_log : "invalid arguments");
    release_resources(s);
    session_free(s);
    napi_throw_error(env, "EFUSE_ARGS", msg);
    return NULL;
  }
  fd_list_t fds_before;
  int have_fds_before = fd_list_snapshot(&fds_before) == 0;
  if (fuse_session_mount(s->se, mnt) != 0) {
    if (have_fds_before) fd_list_free(&fds_before);
    snprintf(msg, sizeof msg, "fuse_session_mount failed: %s", g_log[0] ? g_log : "see above");
    fuse_session_destroy(s->se);
    release_resources(s);
    session_free(s);
    napi_throw_error(env, "EFUSE_MOUNT", msg);
    return NULL;
  }
  s->fd = fuse_session_fd(s->se);
  if (have_fds_before) {
    int control_socket = guard_find_control_socket(&fds_before, s->fd);
    if (control_socket >= 0) s->guard_fd = guard_start(mnt, control_socket);
    fd_list_free(&fds_before);
  }
  int fl = fcntl(s->fd, F_GETFL);
  uv_loop_t *loop = NULL;
  if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok ||
      uv_poll_init(loop, &s->poll, s->fd) != 0) {
    unmount_session(s);
    fuse_session_destroy(s->se);
    release_resources(s);
    session_free(s);
    napi_throw_error(env, "EFUSE_POLL", "cannot watch the FUSE device on the event loop");
    return NULL;
  }
  s->poll.data = s;
  s->poll_inited = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  s->polling = 1;
  napi_add_env_cleanup_hook(env, cleanup_hook, s);
  s->cleanup_hook = 1;
  napi_value obj = make_session_object(env, s);
  if (!obj) session_close(s, 0);
  return obj;
}

/* testSession(dispatch, scratch) -> a session without a kernel (inject() feeds it requests). */
static napi_value m_test_session(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "testSession(dispatch, scratch[, writeBuffer])");
  napi_valuetype wt = napi_undefined;
  if (argc >= 3) napi_typeof(env, argv[2], &wt);
  if (wt != napi_undefined && wt != napi_function) return throw_type(env, "writeBuffer must be a function");
  session_t *s = new_session(env, argv[0], argv[1]);
  if (!s) return NULL;
  if (wt == napi_function) napi_create_reference(env, argv[2], 1, &s->write_buffer_ref);
  s->test_mode = 1;
  s->recv_size = recv_size_for(0);
  s->ended = 1; /* nothing to poll */
  return make_session_object(env, s);
}

/* decodeName(bytes) -> string | null: the kernel-name decoding, for tests. */
static napi_value m_decode_name(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_buf = false;
  void *data;
  size_t len;
  if (argc < 1 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok)
    return throw_type(env, "decodeName(buffer[, isName])");
  int is_name = 1;
  if (argc > 1) {
    bool b = true;
    napi_get_value_bool(env, argv[1], &b);
    is_name = b;
  }
  /* Copy to an exactly-sized heap block so a read past the end is caught by ASan/valgrind. */
  char *copy = malloc(len ? len : 1);
  if (!copy) return throw_type(env, "out of memory");
  if (len) memcpy(copy, data, len);
  napi_value out;
  if (memchr(copy, 0, len) || decode_bytes(env, copy, len, is_name, &out)) napi_get_null(env, &out);
  free(copy);
  return out;
}

/* trimMalloc(): hands the C heap's free pages back to the OS (glibc's malloc_trim). Buffer memory
 * freed by a GC stays resident in malloc's free lists otherwise. True when anything was released. */
static napi_value m_trim_malloc(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
#ifdef __GLIBC__
  napi_get_boolean(env, malloc_trim(0) == 1, &out);
#else
  napi_get_boolean(env, false, &out);
#endif
  return out;
}

static napi_value init_module(napi_env env, napi_value exports) {
  napi_value fn, ops, consts;
  napi_create_function(env, "mount", NAPI_AUTO_LENGTH, m_mount, NULL, &fn);
  napi_set_named_property(env, exports, "mount", fn);
  napi_create_function(env, "testSession", NAPI_AUTO_LENGTH, m_test_session, NULL, &fn);
  napi_set_named_property(env, exports, "testSession", fn);
  napi_create_function(env, "decodeName", NAPI_AUTO_LENGTH, m_decode_name, NULL, &fn);
  napi_set_named_property(env, exports, "decodeName", fn);
  napi_create_function(env, "trimMalloc", NAPI_AUTO_LENGTH, m_trim_malloc, NULL, &fn);
  napi_set_named_property(env, exports, "trimMalloc", fn);
  napi_create_object(env, &ops);
  for (int i = 0; i < OP_COUNT; i++) napi_set_named_property(env, ops, OP_NAMES[i], num(env, i));
  napi_set_named_property(env, exports, "ops", ops);
  napi_create_object(env, &consts);
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_MODE", num(env, FUSE_SET_ATTR_MODE));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_UID", num(env, FUSE_SET_ATTR_UID));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_GID", num(env, FUSE_SET_ATTR_GID));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_SIZE", num(env, FUSE_SET_ATTR_SIZE));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_ATIME", num(env, FUSE_SET_ATTR_ATIME));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_MTIME", num(env, FUSE_SET_ATTR_MTIME));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_ATIME_NOW", num(env, FUSE_SET_ATTR_ATIME_NOW));
  napi_set_named_property(env, consts, "FUSE_SET_ATTR_MTIME_NOW", num(env, FUSE_SET_ATTR_MTIME_NOW));
  napi_set_named_property(env, consts, "FUSE_CAP_READDIRPLUS", num(env, FUSE_CAP_READDIRPLUS));
  napi_set_named_property(env, consts, "FUSE_CAP_WRITEBACK_CACHE", num(env, FUSE_CAP_WRITEBACK_CACHE));
  napi_set_named_property(env, consts, "FUSE_MAJOR_VERSION", num(env, FUSE_MAJOR_VERSION));
  napi_set_named_property(env, consts, "FUSE_MINOR_VERSION", num(env, FUSE_MINOR_VERSION));
  napi_set_named_property(env, consts, "SCRATCH_DOUBLES", num(env, SCRATCH_DOUBLES));
  napi_set_named_property(env, consts, "ATTR_STRIDE", num(env, A_STRIDE));
  napi_set_named_property(env, consts, "RECEIVE_HEADROOM", num(env, RECV_HEADROOM));
  napi_set_named_property(env, consts, "WRITE_VIEW_MIN", num(env, WRITE_BUFFER_MIN));
  napi_set_named_property(env, exports, "constants", consts);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
