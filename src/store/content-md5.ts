// DeleteObjects is a "checksum required" operation. Since the SDK switched to
// CRC32 checksums (2025), it no longer sends Content-MD5, which several
// S3-compatible servers still insist on. The body is a small XML document,
// so adding Content-MD5 ourselves is cheap and harmless for AWS.

import { createHash } from 'node:crypto';
import type { BuildMiddleware, MetadataBearer, Pluggable } from '@smithy/types';

interface RequestWithBody {
  headers: Record<string, string>;
  body?: unknown;
}

function addContentMd5<I extends object, O extends MetadataBearer>(): BuildMiddleware<I, O> {
  return (next) => async (args) => {
    const request = args.request as RequestWithBody | undefined;
    const body = request?.body;
    if (request && (typeof body === 'string' || body instanceof Uint8Array)) {
      const hasMd5 = Object.keys(request.headers).some((h) => h.toLowerCase() === 'content-md5');
      if (!hasMd5) request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
    }
    return next(args);
  };
}

/** Attach to a single command: `command.middlewareStack.use(contentMd5Plugin())`. */
export function contentMd5Plugin<I extends object, O extends MetadataBearer>(): Pluggable<I, O> {
  return {
    applyToStack(stack) {
      stack.add(addContentMd5<I, O>(), { step: 'build', name: 's3cryptfsContentMd5', override: true });
    },
  };
}

function addUnsignedPayload<I extends object, O extends MetadataBearer>(): BuildMiddleware<I, O> {
  return (next) => async (args) => {
    const request = args.request as RequestWithBody | undefined;
    const body = request?.body;
    // The signer hashes buffered bodies unless this header is already set; streams are unsigned anyway.
    if (request && body instanceof Uint8Array && body.length > 0 && !Object.keys(request.headers).some((h) => h.toLowerCase() === 'x-amz-content-sha256')) {
      request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    return next(args);
  };
}

/** Client-wide: request bodies are sent as UNSIGNED-PAYLOAD (no SHA-256 of the body for SigV4). */
export function unsignedPayloadPlugin<I extends object, O extends MetadataBearer>(): Pluggable<I, O> {
  return {
    applyToStack(stack) {
      stack.add(addUnsignedPayload<I, O>(), { step: 'build', name: 's3cryptfsUnsignedPayload', override: true });
    },
  };
}
