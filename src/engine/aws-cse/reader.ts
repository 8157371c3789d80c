/**
 * Random-access reader of one S3 Encryption Client object version (the mount's reads). A read that
 * covers the whole object fetches it whole and authenticates it (GCM tag, CBC padding); any other
 * read fetches aligned windows and decrypts them (AES-CTR for GCM, CBC from the previous block).
 * The last few windows are kept, so sequential reads cost one GET per window. GCM windows that
 * arrive in order from the start also run through one GCM decipher, and the last window fetches the
 * tag: a file read sequentially from start to end (cp, cat through the mount) is authenticated, and
 * the read that reaches the end fails on a bad tag. Reads out of order are not authenticated.
 */
import {
  cbcDecipher, CseIntegrityError, finishCbc, finishGcm, gcmDecipher, openRange, planRange, type ContentKey,
} from '../../format/aws-cse/index.js';
import type { DecipherGCM } from 'node:crypto';
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
  /** GCM state of the windows read in order from the start; null once the order broke. */
  private inOrder: { d: DecipherGCM; queued: number } | null;
  private chain: Promise<void> = Promise.resolve();
  /** True once sequential reads have checked the tag. */
  authenticated = false;
  /** A failed tag check: every later read fails too. */
  private failure: unknown = null;

  constructor(private readonly ctx: EngineContext, readonly path: string, private readonly obj: CseObject, private readonly ck: ContentKey) {
    this.size = obj.plainSize;
    this.etag = obj.etag;
    this.inOrder = ck.gcm ? { d: gcmDecipher(ck), queued: 0 } : null;
  }

  async read(offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    if (this.closed) throw new EngineError('CLOSED', 'reader is closed');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid read of ${length} bytes at ${offset}`);
    }
    opts?.signal?.throwIfAborted();
    if (this.failure) throw this.failure;
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    if (offset === 0 && end === this.size) {
      const whole = await this.readWhole();
      this.authenticated = true;
      return whole;
    }
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
    // Windows requested in order from the start feed one GCM decipher, one after the other.
    const auth = this.inOrder !== null && this.inOrder.queued === w ? this.inOrder : null;
    if (auth) auth.queued = w + 1;
    else if (this.inOrder && w > this.inOrder.queued) this.inOrder = null; // skipped ahead: not authenticated
    const turn = this.chain;
    let done: () => void = () => {};
    if (auth) this.chain = new Promise<void>((resolve) => (done = resolve));
    p = (async () => {
      try {
        const start = w * WINDOW;
        const end = Math.min(this.size, start + WINDOW);
        const plan = planRange(this.ck, this.obj.cipherSize, this.obj.envelope.tagLength, start, end);
        const last = end === this.size;
        // The last window of an in-order GCM read also fetches the tag.
        const fetched = await this.fetch(plan.fetchStart, auth && last ? this.obj.cipherSize : plan.fetchEnd);
        const body = fetched.subarray(0, plan.fetchEnd - plan.fetchStart);
        let plain: Buffer;
        if (auth) await turn;
        if (auth && this.inOrder === auth) {
          plain = auth.d.update(body);
          if (last) {
            this.inOrder = null;
            plain = Buffer.concat([plain, finishGcm(auth.d, fetched.subarray(body.length))]);
            this.authenticated = true;
          }
        } else {
          plain = openRange(this.ck, plan, body);
        }
        this.ctx.stats.bytesDecrypted += plain.length;
        return plain.subarray(start - plan.plainStart, end - plan.plainStart);
      } catch (err) {
        if (auth && this.inOrder === auth) this.inOrder = null;
        if (err instanceof CseIntegrityError) this.failure = err;
        throw err;
      } finally {
        done();
      }
    })();
    this.windows.set(w, p);
    p.catch(() => this.windows.delete(w));
    while (this.windows.size > KEEP_WINDOWS) this.windows.delete(this.windows.keys().next().value!);
    return p;
  }
}

