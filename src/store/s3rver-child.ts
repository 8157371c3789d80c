// The program the embedded S3 child process runs (see embedded-s3.ts).
//
// It is passed with `node -e` rather than shipped as a file, so it works the
// same from src/ (tsx) and from dist/ (tsc does not copy .cjs files). It reads
// its configuration from $S3CRYPTFS_S3RVER_CONFIG, reports the bound port over
// IPC, and exits when the parent goes away, so a crashed test run cannot leave
// an orphaned server behind.
//
// s3rver 3.7 lacks two things the engine relies on, which the child adds in
// front of s3rver's own middleware:
//   - PUT with `If-None-Match: *` (create-only): 412 PreconditionFailed if the
//     key exists, 409 ConditionalRequestConflict while another create-only PUT
//     of the same key is in flight, as S3 does;
//   - AbortMultipartUpload (s3rver answers 405): removes the upload's parts;
//   - CopyObject as S3 does it: s3rver keeps the destination's old ETag when it
//     replaces the metadata of a copy onto an existing key (it rewrites the
//     content but not the stored MD5), and keeps the old LastModified on a copy
//     onto itself (the content file is not rewritten). The wrapper drops the
//     destination's stored MD5 (it is recomputed from the content) and touches
//     the destination, so a copy gets the new content's ETag and a new date;
//   - PutObject all-or-nothing, as S3 does it: s3rver streams the body straight
//     into the object's file, so a request cut off mid-body left a truncated
//     object (or clobbered the old one). The body goes to a temporary file that
//     replaces the object only once it arrived whole.
// UploadPartCopy and ListMultipartUploads remain unimplemented (501).

export const S3RVER_CHILD_PROGRAM = String.raw`
'use strict';
const fs = require('fs');
const path = require('path');

const config = JSON.parse(process.env.S3CRYPTFS_S3RVER_CONFIG);
const S3rver = require(config.s3rverModule);
const S3Error = require(path.join(path.dirname(config.s3rverModule), 'models', 'error.js'));

function fail(err) {
  process.stderr.write(String((err && err.message) || err) + '\n');
  process.exit(1);
}
// Listen errors (EADDRINUSE...) arrive as unhandled 'error' events; report
// them as one line the parent can quote.
process.on('uncaughtException', fail);

const server = new S3rver({
  directory: config.directory,
  address: config.address,
  port: config.port,
  silent: true,
  resetOnClose: false,
  configureBuckets: config.buckets.map((name) => ({ name, configs: [] })),
});

const createOnlyInFlight = new Set();

const http = require('http');
const crypto = require('crypto');
const { pipeline } = require('stream/promises');
let partialSeq = 0;
const originalPutObject = server.store.putObject.bind(server.store);
server.store.putObject = async function putObject(object) {
  // Only request bodies: a completed multipart upload's concatenated parts are local files.
  if (!(object.content instanceof http.IncomingMessage)) return originalPutObject(object);
  const objectPath = server.store.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  // Not ending in the object suffix, so listings never show it.
  const partial = objectPath + '.partial-' + process.pid + '-' + partialSeq++;
  const md5 = crypto.createHash('md5');
  let size = 0;
  try {
    await pipeline(object.content, async function* (source) {
      for await (const chunk of source) {
        md5.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    }, fs.createWriteStream(partial));
    await fs.promises.rename(partial, objectPath);
  } catch (err) {
    await fs.promises.rm(partial, { force: true });
    throw err;
  }
  const hex = md5.digest('hex');
  await server.store.putMetadata(object.bucket, object.key, object.metadata, hex);
  return { size, md5: hex };
};

const originalCopyObject = server.store.copyObject.bind(server.store);
server.store.copyObject = async function copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata) {
  const srcPath = server.store.getResourcePath(srcBucket, srcKey, 'object');
  const destPath = server.store.getResourcePath(destBucket, destKey, 'object');
  if (srcPath !== destPath) await fs.promises.rm(destPath + '.md5', { force: true });
  else if (fs.existsSync(srcPath)) {
    const now = new Date();
    await fs.promises.utimes(srcPath, now, now);
  }
  return originalCopyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata);
};

async function createOnlyPut(ctx, next, bucket, key) {
  const id = bucket + '/' + key;
  if (createOnlyInFlight.has(id)) {
    const conflict = new S3Error('ConditionalRequestConflict', 'A conflicting conditional operation is in progress.');
    conflict.status = 409;
    conflict.expose = true;
    throw conflict;
  }
  createOnlyInFlight.add(id);
  try {
    if (await server.store.existsObject(bucket, key)) {
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
        Condition: 'If-None-Match',
      });
    }
    await next();
  } finally {
    createOnlyInFlight.delete(id);
  }
}

async function abortUpload(ctx, bucket, uploadId) {
  // s3rver's upload ids are 32 hex digits; anything else must not reach the filesystem.
  const uploadDir = /^[0-9a-f]{32}$/.test(uploadId)
    ? path.join(server.store.getResourcePath(bucket, undefined, 'uploads'), uploadId)
    : undefined;
  if (!(await server.store.getBucket(bucket))) {
    throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
  }
  if (!uploadDir || !fs.existsSync(uploadDir)) {
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
  }
  await fs.promises.rm(uploadDir, { recursive: true, force: true });
  ctx.status = 204;
}

server.middleware.unshift(async function s3cryptfsExtensions(ctx, next) {
  const [, bucket, ...keyParts] = ctx.path.split('/');
  const key = keyParts.length ? decodeURIComponent(keyParts.join('/')) : '';
  if (!bucket || !key) return next();
  if (ctx.method === 'PUT' && ctx.get('if-none-match') === '*' && !('uploadId' in ctx.query)) {
    return createOnlyPut(ctx, next, bucket, key);
  }
  if (ctx.method === 'DELETE' && typeof ctx.query.uploadId === 'string') {
    return abortUpload(ctx, bucket, ctx.query.uploadId);
  }
  return next();
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  const httpServer = server.httpServer;
  if (!httpServer) process.exit(0);
  httpServer.close(() => process.exit(0));
  httpServer.closeIdleConnections();
  // In-flight requests get a short grace period, then we leave regardless.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('disconnect', shutdown);

server.run().then((address) => process.send({ type: 'listening', port: address.port }), fail);
`;
