/*
 * s3cryptfs: sealing and opening a run of consecutive chunks of one object (docs/format.md section 4)
 * with ChaCha20-Poly1305 or AES-256-GCM, through the OpenSSL that Node itself exports (no library of
 * our own is linked: the EVP_* symbols resolve from the node binary, or its libcrypto, at load).
 *
 * Why: the filesystem runs on the Node event loop; sealing there serialises the FUSE work with the
 * encryption. The *Async variants run on the libuv threadpool (napi_async_work), so the event loop
 * keeps serving requests meanwhile.
 *
 *   seal(cipherId, key, aadMiddle, aadFinal, index, chunkSize, final, src[], dst[]) -> undefined
 *   open(cipherId, key, aadMiddle, aadFinal, index, chunkSize, final, src[], dst[]) -> -1 or failed index
 *   sealAsync(...) -> Promise<undefined>;  openAsync(...) -> Promise<number>
 *
 * src and dst are arrays of Uint8Arrays taken as one contiguous byte stream each (scatter-gather):
 * a chunk, or its tag, may straddle two of them. Sealing with src = null works in place: each
 * chunk's plaintext already sits where its ciphertext goes in dst (followed by 16 bytes of room for
 * its tag), and the plaintext length follows from dst's. Chunk i of the run has index `index + i`, nonce
 * 0^32 || u64be(index + i), AAD aadFinal for the run's last chunk when `final`, else aadMiddle; the
 * sealed chunk is ciphertext || 16-byte tag. Without `final` every chunk is full (chunkSize bytes);
 * with it the last one holds the rest (an empty run is one empty final chunk).
 *
 * Opening writes plaintext before the tag is checked; a run that fails authentication has its whole
 * destination zeroed, so no unauthenticated plaintext is left behind.
 *
 * The async variants keep references to every buffer until the work completes; the caller must not
 * touch them meanwhile. One allocation per call (the job), none per chunk.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define TAG 16
#define NONCE 12
#define KEY 32
#define MAX_SEGS 32
#define MAX_AAD 256
#define MAX_CHUNK (16u * 1024 * 1024)

typedef struct {
  uint8_t *p;
  size_t n;
} seg_t;

/* A cursor over a segment list. */
typedef struct {
  seg_t *s;
  int ns, i;
  size_t off;
} cur_t;

typedef struct {
  int cipher; /* 1 = ChaCha20-Poly1305, 2 = AES-256-GCM (the header's cipher id) */
  int decrypt;
  int inplace;
  int final;
  uint8_t key[KEY];
  uint8_t aad[2][MAX_AAD];
  size_t aadlen[2];
  int64_t index;
  size_t chunk;
  size_t nchunks;
  seg_t src[MAX_SEGS], dst[MAX_SEGS];
  int nsrc, ndst;
  size_t srclen, dstlen;
  /* result */
  int64_t failed;
  const char *error;
  /* async only */
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[2 * MAX_SEGS];
  int nrefs;
} job_t;

/* Bytes available at the cursor in the current segment (skipping empty/finished segments). */
static size_t cur_avail(cur_t *c) {
  while (c->i < c->ns && c->off == c->s[c->i].n) {
    c->i++;
    c->off = 0;
  }
  return c->i < c->ns ? c->s[c->i].n - c->off : 0;
}

static uint8_t *cur_ptr(cur_t *c) { return c->s[c->i].p + c->off; }

/* Copies n bytes from the cursor into out (or from in to the cursor, when in != NULL). */
static void cur_copy(cur_t *c, uint8_t *out, const uint8_t *in, size_t n) {
  while (n) {
    size_t a = cur_avail(c);
    size_t k = a < n ? a : n;
    if (k == 0) return;
    if (in) {
      memcpy(cur_ptr(c), in, k);
      in += k;
    } else {
      memcpy(out, cur_ptr(c), k);
      out += k;
    }
    c->off += k;
    n -= k;
  }
}

/* Runs the EVP update of n bytes from src cursor to dst cursor, split at segment boundaries. */
static int update_span(EVP_CIPHER_CTX *ctx, int dec, cur_t *in, cur_t *out, size_t n) {
  while (n) {
    size_t a = cur_avail(in), b = cur_avail(out);
    size_t k = a < b ? a : b;
    if (k > n) k = n;
    if (k == 0) return 0; /* sizes were checked: only a buffer changed behind our back gets here */
    if (k > INT_MAX / 2) k = INT_MAX / 2;
    int outl = 0;
    int ok = dec ? EVP_DecryptUpdate(ctx, cur_ptr(out), &outl, cur_ptr(in), (int)k)
                 : EVP_EncryptUpdate(ctx, cur_ptr(out), &outl, cur_ptr(in), (int)k);
    /* Both ciphers are stream modes: output follows input byte for byte. */
    if (!ok || (size_t)outl != k) return 0;
    in->off += k;
    out->off += k;
    n -= k;
  }
  return 1;
}

static void zero_segs(seg_t *s, int n) {
  for (int i = 0; i < n; i++) OPENSSL_cleanse(s[i].p, s[i].n);
}

/* The work itself: runs on any thread, touches no JavaScript value. */
static void run_job(job_t *j) {
  j->failed = -1;
  j->error = NULL;
  const EVP_CIPHER *cipher = j->cipher == 1 ? EVP_chacha20_poly1305() : EVP_aes_256_gcm();
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) {
    j->error = "EVP_CIPHER_CTX_new failed";
    return;
  }
  int dec = j->decrypt;
  int ok = dec ? EVP_DecryptInit_ex(ctx, cipher, NULL, NULL, NULL) : EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE, NULL) > 0;
  ok = ok && (dec ? EVP_DecryptInit_ex(ctx, NULL, NULL, j->key, NULL) : EVP_EncryptInit_ex(ctx, NULL, NULL, j->key, NULL));
  if (!ok) {
    j->error = "cipher initialisation failed";
    EVP_CIPHER_CTX_free(ctx);
    return;
  }
  cur_t in = {j->src, j->nsrc, 0, 0}, out = {j->dst, j->ndst, 0, 0};
  if (j->inplace) in = out;
  size_t plain = dec ? j->dstlen : j->srclen;
  uint8_t nonce[NONCE], tag[TAG];
  memset(nonce, 0, sizeof nonce);
  for (size_t i = 0; i < j->nchunks; i++) {
    uint64_t idx = (uint64_t)j->index + i;
    for (int b = 0; b < 8; b++) nonce[4 + b] = (uint8_t)(idx >> (56 - 8 * b));
    int last = j->final && i == j->nchunks - 1;
    size_t len = plain - i * j->chunk;
    if (len > j->chunk) len = j->chunk;
    int outl = 0;
    ok = dec ? EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) : EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce);
    ok = ok && (dec ? EVP_DecryptUpdate(ctx, NULL, &outl, j->aad[last], (int)j->aadlen[last])
                    : EVP_EncryptUpdate(ctx, NULL, &outl, j->aad[last], (int)j->aadlen[last]));
    if (dec) {
      /* The tag follows the chunk's ciphertext in the source stream: read it out first. */
      cur_t t = in;
      size_t skip = len;
      while (skip) {
        size_t a = cur_avail(&t);
        size_t k = a < skip ? a : skip;
        if (k == 0) break;
        t.off += k;
        skip -= k;
      }
      cur_copy(&t, tag, NULL, TAG);
      ok = ok && update_span(ctx, 1, &in, &out, len);
      ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) > 0;
      if (!ok) break;
      in = t;
      if (EVP_DecryptFinal_ex(ctx, tag, &outl) <= 0) {
        j->failed = (int64_t)idx;
        break;
      }
    } else {
      ok = ok && update_span(ctx, 0, &in, &out, len);
      ok = ok && EVP_EncryptFinal_ex(ctx, tag, &outl) > 0;
      ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, tag) > 0;
      if (!ok) break;
      cur_copy(&out, NULL, tag, TAG);
      if (j->inplace) in = out;
    }
  }
  if (!ok) j->error = dec ? "decryption failed (OpenSSL error)" : "encryption failed (OpenSSL error)";
  if (dec && (j->failed >= 0 || !ok)) zero_segs(j->dst, j->ndst);
  if (!dec && !ok) zero_segs(j->dst, j->ndst);
  OPENSSL_cleanse(tag, sizeof tag);
  EVP_CIPHER_CTX_free(ctx);
}

/* ---------------------------------------------------------------------------------------------- */
/* Argument parsing.                                                                                */

#define CHECK(call)                                                                   \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      napi_throw_error(env, NULL, "aead: N-API call failed: " #call);                 \
      return 0;                                                                       \
    }                                                                                 \
  } while (0)

static int throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return 0;
}

static int bytes_of(napi_env env, napi_value v, uint8_t **p, size_t *n) {
  bool is;
  CHECK(napi_is_typedarray(env, v, &is));
  if (!is) {
    napi_throw_type_error(env, NULL, "aead: expected a Uint8Array");
    return 0;
  }
  napi_typedarray_type type;
  void *data;
  CHECK(napi_get_typedarray_info(env, v, &type, n, &data, NULL, NULL));
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "aead: expected a Uint8Array");
    return 0;
  }
  *p = data;
  return 1;
}

static int segs_of(napi_env env, napi_value arr, seg_t *segs, int *nsegs, size_t *total, job_t *keep) {
  bool is;
  CHECK(napi_is_array(env, arr, &is));
  if (!is) {
    napi_throw_type_error(env, NULL, "aead: expected an array of Uint8Arrays");
    return 0;
  }
  uint32_t len;
  CHECK(napi_get_array_length(env, arr, &len));
  if (len > MAX_SEGS) return throw_range(env, "aead: too many segments");
  *total = 0;
  for (uint32_t i = 0; i < len; i++) {
    napi_value v;
    CHECK(napi_get_element(env, arr, i, &v));
    if (!bytes_of(env, v, &segs[i].p, &segs[i].n)) return 0;
    *total += segs[i].n;
    if (keep) CHECK(napi_create_reference(env, v, 1, &keep->refs[keep->nrefs++]));
  }
  *nsegs = (int)len;
  return 1;
}

/* Fills a job from the 9 arguments; with `async`, takes references to the buffers. */
static int parse_job(napi_env env, napi_callback_info info, job_t *j, int decrypt, int async) {
  size_t argc = 9;
  napi_value a[9];
  CHECK(napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "aead: 9 arguments expected");
    return 0;
  }
  j->decrypt = decrypt;
  int32_t cid;
  CHECK(napi_get_value_int32(env, a[0], &cid));
  if (cid != 1 && cid != 2) return throw_range(env, "aead: unknown cipher id");
  j->cipher = cid;
  uint8_t *p;
  size_t n;
  if (!bytes_of(env, a[1], &p, &n)) return 0;
  if (n != KEY) return throw_range(env, "aead: the key must be 32 bytes");
  memcpy(j->key, p, KEY);
  for (int k = 0; k < 2; k++) {
    if (!bytes_of(env, a[2 + k], &p, &n)) return 0;
    if (n > MAX_AAD) return throw_range(env, "aead: AAD too long");
    memcpy(j->aad[k], p, n);
    j->aadlen[k] = n;
  }
  double idx, chunk;
  CHECK(napi_get_value_double(env, a[4], &idx));
  CHECK(napi_get_value_double(env, a[5], &chunk));
  if (!(idx >= 0 && idx <= 9007199254740991.0 && idx == (double)(int64_t)idx)) return throw_range(env, "aead: bad chunk index");
  if (!(chunk >= 1 && chunk <= MAX_CHUNK && chunk == (double)(size_t)chunk)) return throw_range(env, "aead: bad chunk size");
  j->index = (int64_t)idx;
  j->chunk = (size_t)chunk;
  bool fin;
  CHECK(napi_get_value_bool(env, a[6], &fin));
  j->final = fin;
  job_t *keep = async ? j : NULL;
  napi_valuetype srctype;
  CHECK(napi_typeof(env, a[7], &srctype));
  j->inplace = srctype == napi_null;
  if (j->inplace && decrypt) {
    napi_throw_type_error(env, NULL, "aead: opening does not work in place");
    return 0;
  }
  if (!j->inplace && !segs_of(env, a[7], j->src, &j->nsrc, &j->srclen, keep)) return 0;
  if (!segs_of(env, a[8], j->dst, &j->ndst, &j->dstlen, keep)) return 0;
  if (j->inplace) {
    /* In place: the plaintext length follows from the sealed length (see docs/format.md 5.2). */
    size_t sealedChunk = j->chunk + TAG;
    size_t n = fin ? (j->dstlen + sealedChunk - 1) / sealedChunk : j->dstlen / sealedChunk;
    if (n == 0 || j->dstlen < TAG * n) return throw_range(env, "aead: destination too small");
    j->srclen = j->dstlen - TAG * n;
  }
  /* Chunk count from the plaintext side; the other side must match exactly. */
  size_t sealed = decrypt ? j->srclen : j->dstlen, plain = decrypt ? j->dstlen : j->srclen;
  size_t nch;
  if (fin) {
    nch = plain == 0 ? 1 : (plain + j->chunk - 1) / j->chunk;
  } else {
    if (plain == 0 || plain % j->chunk) return throw_range(env, "aead: a run that is not final holds whole chunks only");
    nch = plain / j->chunk;
  }
  if (sealed != plain + TAG * nch) return throw_range(env, "aead: source and destination sizes do not match");
  if ((uint64_t)j->index + nch - 1 > 9007199254740991ull) return throw_range(env, "aead: chunk index out of range");
  j->nchunks = nch;
  return 1;
}

static void release_job(napi_env env, job_t *j) {
  for (int i = 0; i < j->nrefs; i++) napi_delete_reference(env, j->refs[i]);
  j->nrefs = 0;
  OPENSSL_cleanse(j->key, KEY);
}

/* ---------------------------------------------------------------------------------------------- */
/* Synchronous calls.                                                                               */

static napi_value run_sync(napi_env env, napi_callback_info info, int decrypt) {
  job_t j;
  memset(&j, 0, sizeof j);
  napi_value result = NULL;
  if (parse_job(env, info, &j, decrypt, 0)) {
    run_job(&j);
    if (j.error) napi_throw_error(env, NULL, j.error);
    else if (decrypt) napi_create_double(env, (double)j.failed, &result);
    else napi_get_undefined(env, &result);
  }
  OPENSSL_cleanse(j.key, KEY);
  return result;
}

static napi_value seal_sync(napi_env env, napi_callback_info info) { return run_sync(env, info, 0); }
static napi_value open_sync(napi_env env, napi_callback_info info) { return run_sync(env, info, 1); }

/* ---------------------------------------------------------------------------------------------- */
/* Asynchronous calls on the libuv threadpool.                                                      */

static void exec_async(napi_env env, void *data) {
  (void)env;
  run_job(data);
}

static void complete_async(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value v;
  if (status != napi_ok) {
    napi_value msg;
    napi_create_string_utf8(env, "aead: work cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  } else if (j->error) {
    napi_value msg;
    napi_create_string_utf8(env, j->error, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  } else {
    if (j->decrypt) napi_create_double(env, (double)j->failed, &v);
    else napi_get_undefined(env, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  release_job(env, j);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value run_async(napi_env env, napi_callback_info info, int decrypt) {
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "aead: out of memory");
    return NULL;
  }
  if (!parse_job(env, info, j, decrypt, 1)) {
    release_job(env, j);
    free(j);
    return NULL;
  }
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, decrypt ? "s3cryptfs:open" : "s3cryptfs:seal", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, exec_async, complete_async, j, &j->work) != napi_ok) {
    release_job(env, j);
    free(j); /* a created deferred without its promise returned is simply garbage */
    napi_throw_error(env, NULL, "aead: cannot start the work");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    release_job(env, j);
    free(j);
    napi_throw_error(env, NULL, "aead: cannot queue the work");
    return NULL;
  }
  return promise;
}

static napi_value seal_async(napi_env env, napi_callback_info info) { return run_async(env, info, 0); }
static napi_value open_async(napi_env env, napi_callback_info info) { return run_async(env, info, 1); }

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"seal", NULL, seal_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"open", NULL, open_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sealAsync", NULL, seal_async, NULL, NULL, NULL, napi_enumerable, NULL},
    {"openAsync", NULL, open_async, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
