/**
 * Random-access reader of one S3 Encryption Client object version (the mount's reads). A read that
 * covers the whole object fetches it whole and authenticates it (GCM tag, CBC padding); any other
 * read fetches aligned windows and decrypts them unauthenticated (AES-CTR for GCM, CBC from the
 * previous block). The last few windows are kept, so sequential reads cost one GET per window.
 */
import {
  cbcDecipher, CseIntegrityError, finishCbc, finishGcm, gcmDecipher, openRange, planRange, type ContentKey,
} from '../../format/aws-cse/index.js';
import type { EngineContext } from '../context.js';
import { EngineError } from '../errors.js';
import { mapReadError } from '../read-errors.js';
import type { ObjectReader, ReadOptions } from '../types.js';
import type { CseObject } from './support.js';

const WINDOW = 1024 * 1024;
const KEEP_WINDOWS = 4;

export class CseReader implements ObjectReader {
  readonly size: number;
  readonly etag: string;
  private closed = false;
  private readonly windows = new Map<number, Promise<Buffer>>();

  constructor(private readonly ctx: EngineContext, readonly path: string, private readonly obj: CseObject, private readonly ck: ContentKey) {
    this.size = obj.plainSize;
    this.etag = obj.etag;
  }

  async read(offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    if (this.closed) throw new EngineError('CLOSED', 'reader is closed');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid read of ${length} bytes at ${offset}`);
    }
    opts?.signal?.throwIfAborted();
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    if (offset === 0 && end === this.size) return this.readWhole();
    const parts: Buffer[] = [];
    for (let w = Math.floor(offset / WINDOW); w * WINDOW < end; w++) {
      const data = await this.window(w);
      const from = Math.max(offset, w * WINDOW) - w * WINDOW;
      const to = Math.min(end, (w + 1) * WINDOW) - w * WINDOW;
      parts.push(data.subarray(from, to));
    }
    return parts.length === 1 ? Buffer.from(parts[0]) : Buffer.concat(parts);
  }

  close(): void {
    this.closed = true;
    this.windows.clear();
  }

  private async fetch(start: number, end: number): Promise<Buffer> {
    try {
      const body = await this.ctx.store.getRange(this.ctx.bucket, this.obj.key, start, end, { ifMatch: this.etag });
      this.ctx.stats.bytesFetched += body.length;
      return body;
    } catch (err) {
      throw mapReadError(err, this.path);
    }
  }

  /** The whole object, authenticated. */
  private async readWhole(): Promise<Buffer> {
    const body = await this.fetch(0, this.obj.cipherSize);
    let plain: Buffer;
    if (this.ck.gcm) {
      const tag = this.obj.envelope.tagLength;
      const d = gcmDecipher(this.ck);
      const head = d.update(body.subarray(0, body.length - tag));
      plain = Buffer.concat([head, finishGcm(d, body.subarray(body.length - tag))]);
    } else {
      const d = cbcDecipher(this.ck.key, this.ck.iv, true);
      plain = Buffer.concat([d.update(body), finishCbc(d)]);
    }
    if (plain.length !== this.size) throw new CseIntegrityError('CSE_INVALID_SIZE', `"${this.path}" decrypted to ${plain.length} bytes, expected ${this.size}`);
    this.ctx.stats.bytesDecrypted += plain.length;
    return plain;
  }

  private window(w: number): Promise<Buffer> {
    let p = this.windows.get(w);
    if (p) {
      this.windows.delete(w);
      this.windows.set(w, p); // most recently used last
      return p;
    }
    p = (async () => {
      const start = w * WINDOW;
      const end = Math.min(this.size, start + WINDOW);
      const plan = planRange(this.ck, this.obj.cipherSize, this.obj.envelope.tagLength, start, end);
      const plain = openRange(this.ck, plan, await this.fetch(plan.fetchStart, plan.fetchEnd));
      this.ctx.stats.bytesDecrypted += plain.length;
      return plain.subarray(start - plan.plainStart, end - plan.plainStart);
    })();
    this.windows.set(w, p);
    p.catch(() => this.windows.delete(w));
    while (this.windows.size > KEEP_WINDOWS) this.windows.delete(this.windows.keys().next().value!);
    return p;
  }
}

