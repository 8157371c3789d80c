/**
 * AWS S3 Encryption Client objects inside an s3cryptfs store: recognises them by their metadata,
 * loads instruction files, opens data keys (raw keys or KMS), and serves the engine's hooks
 * (stat, listing sizes, readers, streams, writers, copy/delete of instruction files).
 * Only active in stores with plain names: the AWS SDKs address objects by their plaintext key.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import {
  BLOCK, buildV2Metadata, cbcDecipher, cbcPlainSize, checkDataKey, contentKey, CseIntegrityError, CseKeyMissingError,
  detectCse, envelopeEntries, finishCbc, finishGcm, GCM_ALG, gcmCipher, gcmDecipher, gcmRangeDecipher, INSTRUCTION_SUFFIX,
  parseEnvelope, parseInstructionFile, plainSizeFromCipher, unwrapDataKey, wrapAesGcm, wrapRsaOaep,
  type ContentKey, type CseEnvelope,
} from '../../format/aws-cse/index.js';
import { isStoreError } from '../../store/errors.js';
import type { ListedObject, ObjectInfo } from '../../store/store.js';
import type { EngineContext } from '../context.js';
import { EngineError } from '../errors.js';
import type { ReadStreamOptions } from '../read-stream.js';
import { mapReadError } from '../read-errors.js';
import type { ObjectReader, ObjectWriter, WriteOptions } from '../types.js';
import { EngineWriter, type WriterCodec } from '../writer.js';
import type { KmsPort } from './kms.js';
import { CseReader } from './reader.js';

export type WriteFormat = 'native' | 'aws-cse-v2';
export const WRITE_FORMATS: WriteFormat[] = ['native', 'aws-cse-v2'];

export interface AwsCseOptions {
  /** Symmetric master key (raw 16/24/32 bytes): reads legacy/AESWrap/AES-GCM wrapped keys, writes AES/GCM. */
  aesKey?: Buffer;
  /** RSA private key: reads RSA-OAEP-SHA1 and V1 PKCS#1 wrapped keys, writes RSA-OAEP-SHA1. */
  rsaKey?: KeyObject;
  /** AWS KMS key id/ARN/alias and a client: reads kms and kms+context, writes kms+context. */
  kms?: { keyId: string; client: KmsPort };
  /** What new objects are written as (default native). */
  writeFormat?: WriteFormat;
  /** Objects whose format is remembered (default 10,000). */
  cacheEntries?: number;
}

/** An S3EC object version as the engine sees it. */
export interface CseObject {
  key: string;
  etag: string;
  cipherSize: number;
  plainSize: number;
  lastModified: Date;
  envelope: CseEnvelope;
  /** The stored metadata (envelope entries and our attributes). */
  metadata: Record<string, string>;
}

/** What `s3cryptfs stat` shows for an S3EC object. */
export interface CseFacts {
  format: string;
  contentAlgorithm: string;
  wrapAlgorithm: string;
  envelope: 'metadata' | 'instruction file';
  materialDescription: Record<string, string>;
  authenticated: boolean;
}

interface Entry {
  etag: string;
  /** null: not an S3EC object. */
  obj: CseObject | null;
  key?: Promise<ContentKey>;
}

/** Concurrent HEADs while sizing a listing page. */
const LIST_CONCURRENCY = 8;
/** GCM's limit: 2^32 - 2 blocks of plaintext. */
const GCM_MAX_PLAIN = (2 ** 32 - 2) * 16;

export class AwsCse {
  readonly writeFormat: WriteFormat;
  private readonly known: LRUCache<string, Entry>;

  constructor(private readonly ctx: EngineContext, private readonly opts: AwsCseOptions) {
    this.writeFormat = opts.writeFormat ?? 'native';
    this.known = new LRUCache({ max: opts.cacheEntries ?? 10_000 });
  }

  get writesCse(): boolean {
    return this.writeFormat === 'aws-cse-v2';
  }

  /** Instruction files are hidden from listings (their objects are listed). */
  isInstructionFile(key: string): boolean {
    return key.endsWith(INSTRUCTION_SUFFIX);
  }

  /** The S3EC object behind a HEAD result, or null for our own format. Loads the instruction file if needed. */
  async classify(key: string, info: Pick<ObjectInfo, 'size' | 'etag' | 'metadata' | 'lastModified'>): Promise<CseObject | null> {
    const cached = this.known.get(key);
    if (cached && cached.etag === info.etag) return cached.obj;
    const detected = detectCse(info.metadata);
    if (detected.kind === 'none') {
      this.known.set(key, { etag: info.etag, obj: null });
      return null;
    }
    let instruction: Record<string, string> | undefined;
    if (detected.kind === 'instruction-file') instruction = await this.loadInstruction(key);
    const envelope = parseEnvelope(info.metadata, instruction);
    const entry: Entry = { etag: info.etag, obj: null };
    const obj: CseObject = {
      key, etag: info.etag, cipherSize: info.size, plainSize: 0, lastModified: info.lastModified, envelope, metadata: info.metadata,
    };
    entry.obj = obj;
    const size = plainSizeFromCipher(envelope, info.size);
    if (size === null) {
      // CBC without a recorded length: the padding of the last block tells.
      const ck = await this.contentKeyOf(entry);
      const tail = await this.ctx.store.getRange(this.ctx.bucket, key, Math.max(0, info.size - 32), info.size, { ifMatch: info.etag });
      const prev = info.size === 16 ? envelope.iv : tail.subarray(0, 16);
      obj.plainSize = cbcPlainSize(ck.key, prev, tail.subarray(tail.length - 16), info.size);
    } else {
      obj.plainSize = size;
    }
    this.known.set(key, entry);
    return obj;
  }

  /** HEAD + classify; null when there is no object; `obj` null for our own format. */
  async head(key: string): Promise<{ info: ObjectInfo; obj: CseObject | null } | null> {
    const info = await this.ctx.store.head(this.ctx.bucket, key);
    if (!info) return null;
    return { info, obj: await this.classify(key, info) };
  }

  /** The content key of an object (data key unwrapped once per object version, commitment checked). */
  async contentKey(obj: CseObject): Promise<ContentKey> {
    let entry = this.known.get(obj.key);
    if (!entry || entry.etag !== obj.etag || entry.obj === null) {
      entry = { etag: obj.etag, obj };
      this.known.set(obj.key, entry);
    }
    return this.contentKeyOf(entry);
  }

  private contentKeyOf(entry: Entry): Promise<ContentKey> {
    if (!entry.key) {
      const env = entry.obj!.envelope;
      entry.key = this.dataKey(env).then((dk) => contentKey(env, dk));
      // A failed unwrap is not remembered: the next read tries again (e.g. after a KMS outage).
      entry.key.catch(() => { entry.key = undefined; });
    }
    return entry.key;
  }

  private async dataKey(env: CseEnvelope): Promise<Buffer> {
    if (env.wrapAlg !== 'kms' && env.wrapAlg !== 'kms+context') return unwrapDataKey(env, this.opts);
    const kms = this.opts.kms;
    if (!kms) throw new CseKeyMissingError(`this object's data key is wrapped by AWS KMS (${env.wrapAlg}): give --aws-cse-kms-key-id`);
    if (env.wrapAlg === 'kms+context' && env.matdesc['aws:x-amz-cek-alg'] !== env.contentAlg) {
      throw new CseIntegrityError('CSE_KEY_UNWRAP_FAILED', `the KMS encryption context names content algorithm ${JSON.stringify(env.matdesc['aws:x-amz-cek-alg'])}, the envelope says ${JSON.stringify(env.contentAlg)}`);
    }
    return checkDataKey(await kms.client.decrypt(env.encryptedKey, env.matdesc, kms.keyId), env);
  }

  private async loadInstruction(key: string): Promise<Record<string, string>> {
    let body: Buffer;
    try {
      body = (await this.ctx.store.getObject(this.ctx.bucket, key + INSTRUCTION_SUFFIX)).body;
    } catch (err) {
      if (isStoreError(err, 'NoSuchKey')) {
        throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `"${key}" is an S3 Encryption Client object whose envelope is neither in its metadata nor in ${key + INSTRUCTION_SUFFIX}`);
      }
      throw err;
    }
    return parseInstructionFile(body.toString('utf8'));
  }

  /**
   * Plaintext sizes of the S3EC objects on a listing page (one HEAD per object not seen before:
   * a listing does not carry metadata), the instruction files to hide, and the objects to skip.
   */
  async classifyListing(objects: ListedObject[], warn: (key: string, message: string) => void): Promise<{ sizes: Map<string, number>; skip: Set<string> }> {
    const sizes = new Map<string, number>();
    const skip = new Set<string>();
    const todo = objects.filter((o) => {
      if (o.key.endsWith('/') || o.key === this.ctx.paths.configKey || o.key === this.ctx.paths.rootIndexKey) return false;
      if (this.isInstructionFile(o.key)) {
        skip.add(o.key);
        return false;
      }
      return true;
    });
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const o = todo[next++];
        try {
          const cached = this.known.get(o.key);
          let obj: CseObject | null;
          if (cached && cached.etag === o.etag) obj = cached.obj;
          else {
            const info = await this.ctx.store.head(this.ctx.bucket, o.key);
            if (!info) {
              skip.add(o.key); // deleted since the listing
              continue;
            }
            obj = await this.classify(o.key, info);
          }
          if (obj) sizes.set(o.key, obj.plainSize);
        } catch (err) {
          if (!(err instanceof CseIntegrityError) && !(err instanceof CseKeyMissingError)) throw err;
          skip.add(o.key);
          warn(o.key, `skipping "${o.key}": S3 Encryption Client object that cannot be sized (${err.message})`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, todo.length) }, worker));
    return { sizes, skip };
  }

  /** Random-access reader of an S3EC object, or null when the object is in our own format. */
  async openReader(path: string, key: string, etag?: string): Promise<ObjectReader | null> {
    const cached = this.known.get(key);
    let obj: CseObject | null;
    if (etag !== undefined && cached && cached.etag === etag) obj = cached.obj;
    else {
      const found = await this.head(key);
      if (!found) throw new EngineError('NOT_FOUND', `no such file: "${path}"`);
      obj = found.obj;
    }
    if (!obj) return null;
    return new CseReader(this.ctx, path, obj, await this.contentKey(obj));
  }

  /**
   * Verified plaintext stream of a whole object or of [start, end). Our own objects go to `native`.
   * Whole GCM objects are authenticated (the stream fails at its end on a bad tag); ranges of GCM
   * objects are decrypted with AES-CTR and are not.
   */
  readStream(path: string, key: string, opts: ReadStreamOptions, native: () => Readable): Readable {
    const out = new PassThrough({ highWaterMark: 256 * 1024 });
    const run = async () => {
      const found = await this.head(key);
      if (!found) throw new EngineError('NOT_FOUND', `no such file: "${path}"`);
      if (!found.obj) {
        await pipeline(native(), out);
        return;
      }
      const obj = found.obj;
      const ck = await this.contentKey(obj);
      const start = Math.max(0, opts.start ?? 0);
      const end = Math.min(obj.plainSize, opts.end ?? obj.plainSize);
      if (start >= end) {
        out.end();
        return;
      }
      if (start === 0 && end === obj.plainSize) {
        const { stream } = await this.get(path, key, { ifMatch: obj.etag });
        await pipeline(stream, new WholeDecoder(this.ctx, obj, ck), out);
        return;
      }
      const tag = obj.envelope.tagLength;
      const block = Math.floor(start / BLOCK);
      const fetchEnd = Math.min(obj.cipherSize - tag, Math.ceil(end / BLOCK) * BLOCK);
      const fetchStart = ck.gcm || block === 0 ? block * BLOCK : (block - 1) * BLOCK;
      const { stream } = await this.get(path, key, { start: fetchStart, endExclusive: fetchEnd, ifMatch: obj.etag });
      await pipeline(stream, new RangeDecoder(this.ctx, ck, block, start - block * BLOCK, end - start), out);
    };
    run().catch((err: unknown) => out.destroy(err as Error));
    return out;
  }

  private async get(path: string, key: string, opts: Parameters<EngineContext['store']['getStream']>[2]) {
    try {
      return await this.ctx.store.getStream(this.ctx.bucket, key, opts);
    } catch (err) {
      throw mapReadError(err, path);
    }
  }

  /** A writer of V2 AES/GCM objects (multipart for large ones, GCM streamed serially across parts). */
  createWriter(path: string, key: string, opts: WriteOptions = {}): ObjectWriter {
    return new CseWriter(this.ctx, path, key, opts, () => this.prepareWrite());
  }

  /** A fresh data key and its envelope fields: KMS (kms+context) > RSA (RSA-OAEP-SHA1) > AES (AES/GCM). */
  async prepareWrite(): Promise<WriterCodec> {
    const iv = randomBytes(12);
    let dataKey: Buffer;
    let encryptedKey: Buffer;
    let wrapAlg: 'AES/GCM' | 'RSA-OAEP-SHA1' | 'kms+context';
    let matdesc: Record<string, string> = {};
    if (this.opts.kms) {
      matdesc = { 'aws:x-amz-cek-alg': GCM_ALG };
      const dk = await this.opts.kms.client.generateDataKey(this.opts.kms.keyId, matdesc);
      if (dk.plaintext.length !== 32) throw new Error(`KMS returned a ${dk.plaintext.length}-byte data key`);
      ({ plaintext: dataKey, ciphertext: encryptedKey } = dk);
      wrapAlg = 'kms+context';
    } else if (this.opts.rsaKey) {
      dataKey = randomBytes(32);
      encryptedKey = wrapRsaOaep(this.opts.rsaKey, dataKey, GCM_ALG);
      wrapAlg = 'RSA-OAEP-SHA1';
    } else if (this.opts.aesKey) {
      dataKey = randomBytes(32);
      encryptedKey = wrapAesGcm(this.opts.aesKey, dataKey, GCM_ALG);
      wrapAlg = 'AES/GCM';
    } else {
      throw new CseKeyMissingError('writing the AWS S3 Encryption Client format needs --aws-cse-key-file, --aws-cse-rsa-key or --aws-cse-kms-key-id');
    }
    const cipher = gcmCipher(dataKey, iv);
    dataKey.fill(0);
    let total = 0;
    return {
      push: (data) => {
        total += data.length;
        if (total > GCM_MAX_PLAIN) throw new EngineError('TOO_LARGE', 'AES-GCM content is limited to 64 GiB per object');
        return [cipher.update(data)];
      },
      finish: () => [cipher.final(), cipher.getAuthTag()],
      metadata: (complete, plainBytes) => buildV2Metadata({ encryptedKey, iv, wrapAlg, matdesc, plainLength: complete ? plainBytes : undefined }),
    };
  }

  /** Metadata entries a copy of an S3EC object must keep (the envelope). */
  envelopeMetadata(obj: CseObject): Record<string, string> {
    return envelopeEntries(obj.metadata);
  }

  /** After a copy: the instruction file goes along. */
  async copyInstruction(obj: CseObject, dstKey: string): Promise<void> {
    if (obj.envelope.location !== 'instruction-file' || dstKey === obj.key) return;
    await this.ctx.store.copy(this.ctx.bucket, obj.key + INSTRUCTION_SUFFIX, dstKey + INSTRUCTION_SUFFIX);
  }

  /** Keys to delete along with `key` (its instruction file, if any: deleting a missing key is a no-op). */
  companions(key: string): string[] {
    return this.isInstructionFile(key) ? [] : [key + INSTRUCTION_SUFFIX];
  }

  facts(obj: CseObject): CseFacts {
    const env = obj.envelope;
    return {
      format: `aws-cse-v${env.version}`,
      contentAlgorithm: env.contentAlg === '115' ? 'ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (115)' : env.contentAlg,
      wrapAlgorithm: env.wrapAlg === 'legacy' ? 'legacy (AES/ECB or RSA PKCS#1)' : env.wrapAlg,
      envelope: env.location === 'metadata' ? 'metadata' : 'instruction file',
      materialDescription: env.matdesc,
      authenticated: env.tagLength > 0,
    };
  }
}

/** ObjectWriter over EngineWriter with the GCM codec; the data key is set up (maybe via KMS) before the first write. */
class CseWriter implements ObjectWriter {
  private readonly inner: Promise<EngineWriter>;
  private writer: EngineWriter | null = null;

  constructor(ctx: EngineContext, path: string, key: string, opts: WriteOptions, prepare: () => Promise<WriterCodec>) {
    this.inner = prepare().then((codec) => (this.writer = new EngineWriter(ctx, path, key, opts, codec)));
    this.inner.catch(() => {});
  }

  get bytesWritten(): number {
    return this.writer?.bytesWritten ?? 0;
  }

  async write(data: Uint8Array): Promise<void> {
    await (await this.inner).write(data);
  }

  async close(): Promise<{ etag: string; size: number }> {
    return (await this.inner).close();
  }

  async abort(): Promise<void> {
    const w = await this.inner.catch(() => null);
    await w?.abort();
  }
}

/** Whole object: GCM with the tag checked at the end, or CBC with the padding checked. */
class WholeDecoder extends Transform {
  private tail = Buffer.alloc(0);
  private readonly gcm;
  private readonly cbc;
  private produced = 0;

  constructor(private readonly ctx: EngineContext, private readonly obj: CseObject, ck: ContentKey) {
    super({ readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    this.gcm = ck.gcm ? gcmDecipher(ck) : null;
    this.cbc = ck.gcm ? null : cbcDecipher(ck.key, ck.iv, true);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.ctx.stats.bytesFetched += data.length;
    let body = data;
    if (this.gcm) {
      // Hold back the last 16 bytes: they may be the tag.
      const all = this.tail.length ? Buffer.concat([this.tail, data]) : data;
      const keep = Math.min(16, all.length);
      body = all.subarray(0, all.length - keep);
      this.tail = Buffer.from(all.subarray(all.length - keep));
    }
    const plain = (this.gcm ?? this.cbc)!.update(body);
    this.out(plain);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.gcm) {
        if (this.tail.length !== 16) throw new CseIntegrityError('CSE_INVALID_SIZE', `"${this.obj.key}" is shorter than a GCM tag`);
        this.out(finishGcm(this.gcm, this.tail));
      } else {
        this.out(finishCbc(this.cbc!));
      }
      if (this.produced !== this.obj.plainSize) {
        throw new CseIntegrityError('CSE_INVALID_SIZE', `"${this.obj.key}" decrypted to ${this.produced} bytes, expected ${this.obj.plainSize}`);
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private out(plain: Buffer): void {
    if (plain.length === 0) return;
    this.produced += plain.length;
    this.ctx.stats.bytesDecrypted += plain.length;
    this.push(plain);
  }
}

/** Block-aligned ciphertext of a range in, plaintext [skip, skip + length) of it out (unauthenticated). */
class RangeDecoder extends Transform {
  private readonly ctr;
  private cbc: ReturnType<typeof cbcDecipher> | null = null;
  private ivBytes: Buffer;
  private remaining: number;

  constructor(private readonly ctx: EngineContext, private readonly ck: ContentKey, block: number, private skip: number, length: number) {
    super({ readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    this.remaining = length;
    this.ctr = ck.gcm ? gcmRangeDecipher(ck, block) : null;
    // CBC: block 0 opens with the envelope IV, any other with the ciphertext block before it (first 16 bytes fetched).
    this.ivBytes = ck.gcm || block > 0 ? Buffer.alloc(0) : ck.iv;
    if (!ck.gcm && block === 0) this.cbc = cbcDecipher(ck.key, ck.iv, false);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.ctx.stats.bytesFetched += data.length;
    let body = data;
    if (!this.ck.gcm && !this.cbc) {
      const need = 16 - this.ivBytes.length;
      this.ivBytes = Buffer.concat([this.ivBytes, body.subarray(0, need)]);
      body = body.subarray(need);
      if (this.ivBytes.length < 16) return cb();
      this.cbc = cbcDecipher(this.ck.key, this.ivBytes, false);
    }
    this.out((this.ctr ?? this.cbc)!.update(body));
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      const d = this.ctr ?? this.cbc;
      if (d) this.out(d.final());
      if (this.remaining > 0) throw new CseIntegrityError('CSE_INVALID_SIZE', 'the object ended before the requested range');
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private out(plain: Buffer): void {
    let p = plain;
    if (this.skip > 0) {
      const n = Math.min(this.skip, p.length);
      this.skip -= n;
      p = p.subarray(n);
    }
    if (p.length === 0 || this.remaining === 0) return;
    const out = p.subarray(0, Math.min(p.length, this.remaining));
    this.remaining -= out.length;
    this.ctx.stats.bytesDecrypted += out.length;
    this.push(out);
  }
}
