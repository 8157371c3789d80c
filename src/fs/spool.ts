/**
 * Local spool files for files that are not written strictly sequentially. The content lives in an
 * unlinked temporary file, encrypted with AES-256-CTR under a random key that exists only in memory,
 * so no plaintext ever reaches the local disk and nothing is left behind if the process dies.
 *
 * Layout: block i (BLOCK bytes) is stored at offset i * BLOCK. Every write of a block uses a fresh
 * write number w, and the block's keystream starts at IV = w (64 bits) || i * 256 (64 bits), so no
 * (key, counter) pair is ever used twice even when a block is rewritten in place. The write number
 * of every stored block is kept in memory (8 bytes per 4 KiB); 0 means "not stored locally".
 *
 * A spool can sit on top of a base (the object as it was when the file was opened): blocks that were
 * never written locally are read from the base, so appending to or patching a large object fetches
 * only the blocks that are touched. Bytes at or beyond `size` always read as zeros.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, chmod, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mutex } from './mutex.js';

export const SPOOL_BLOCK = 4096;
const COUNTERS_PER_BLOCK = SPOOL_BLOCK / 16;

/** Where a spool's unwritten blocks come from. */
export interface SpoolBase {
  read(offset: number, length: number): Promise<Buffer>;
}

export class SpoolDir {
  private seq = 0;
  private closed = false;
  private readonly spools = new Set<Spool>();

  private constructor(readonly dir: string) {}

  static async create(parent: string = tmpdir()): Promise<SpoolDir> {
    const dir = await mkdtemp(path.join(parent, 's3cryptfs-spool-'));
    await chmod(dir, 0o700);
    return new SpoolDir(dir);
  }

  /** A new spool of `baseSize` bytes whose content comes from `base` until overwritten. */
  async open(base: SpoolBase | null = null, baseSize = 0): Promise<Spool> {
    if (this.closed) throw new Error('spool directory is closed');
    const file = path.join(this.dir, `spool-${process.pid}-${++this.seq}`);
    const fh = await open(file, 'w+', 0o600);
    // The name is not needed: the open descriptor keeps the data, and the kernel frees it when we exit.
    await unlink(file);
    const spool = new Spool(fh, base, base ? baseSize : 0, () => this.spools.delete(spool));
    this.spools.add(spool);
    return spool;
  }

  get openSpools(): number {
    return this.spools.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.spools].map((s) => s.close()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class Spool {
  private readonly key = randomBytes(32);
  private gens = new Float64Array(64);
  private writeNo = 0;
  private closed = false;
  private readonly lock = new Mutex();
  /** Logical size in bytes. */
  private _size: number;
  /** Bytes below this come from the base when their block was never written locally. */
  private baseSize: number;

  constructor(private readonly fh: FileHandle, private base: SpoolBase | null, baseSize: number, private readonly onClose: () => void) {
    this._size = baseSize;
    this.baseSize = baseSize;
  }

  get size(): number {
    return this._size;
  }

  /** True once every byte below `size` is held locally (the base is no longer needed). */
  get detached(): boolean {
    return this.base === null || this.baseSize === 0;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.lock.run(() => this.readUnlocked(offset, length));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.lock.run(() => this.writeUnlocked(offset, data));
  }

  truncate(size: number): Promise<void> {
    return this.lock.run(() => this.truncateUnlocked(size));
  }

  /** The whole content in pieces of `pieceSize` bytes (for upload). */
  async *pieces(pieceSize = 1024 * 1024): AsyncGenerator<Buffer> {
    const size = this._size;
    for (let off = 0; off < size; off += pieceSize) {
      yield await this.read(off, Math.min(pieceSize, size - off));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.lock.run(async () => {
      if (this.closed) return;
      this.closed = true;
      this.key.fill(0);
      this.base = null;
      this.onClose();
      await this.fh.close();
    });
  }

  // ---- internals (called with the lock held) ----

  private checkOpen(): void {
    if (this.closed) throw new Error('spool is closed');
  }

  private gen(block: number): number {
    return block < this.gens.length ? this.gens[block] : 0;
  }

  private setGen(block: number, w: number): void {
    if (block >= this.gens.length) {
      let n = this.gens.length;
      while (n <= block) n *= 2;
      const grown = new Float64Array(n);
      grown.set(this.gens);
      this.gens = grown;
    }
    this.gens[block] = w;
  }

  private cipher(w: number, block: number) {
    const iv = Buffer.alloc(16);
    iv.writeUIntBE(w, 2, 6);
    iv.writeBigUInt64BE(BigInt(block) * BigInt(COUNTERS_PER_BLOCK), 8);
    return createCipheriv('aes-256-ctr', this.key, iv);
  }

  /** Plaintext of blocks [first, first+count), BLOCK bytes each (zeros where nothing is stored). */
  private async readBlocks(first: number, count: number): Promise<Buffer> {
    const out = Buffer.alloc(count * SPOOL_BLOCK);
    let i = 0;
    while (i < count) {
      const b = first + i;
      const g = this.gen(b);
      let j = i + 1;
      if (g !== 0) {
        // A run of locally stored blocks: one pread, then one keystream per run of equal write numbers.
        while (j < count && this.gen(first + j) !== 0) j++;
        const len = (j - i) * SPOOL_BLOCK;
        const { bytesRead } = await this.fh.read(out, i * SPOOL_BLOCK, len, b * SPOOL_BLOCK);
        if (bytesRead < len) out.fill(0, i * SPOOL_BLOCK + bytesRead, j * SPOOL_BLOCK);
        let k = i;
        while (k < j) {
          const w = this.gen(first + k);
          let m = k + 1;
          while (m < j && this.gen(first + m) === w) m++;
          const region = out.subarray(k * SPOOL_BLOCK, m * SPOOL_BLOCK);
          const d = this.cipher(w, first + k);
          const plain = d.update(region);
          plain.copy(region);
          k = m;
        }
      } else {
        while (j < count && this.gen(first + j) === 0) j++;
        const start = b * SPOOL_BLOCK;
        const end = Math.min((first + j) * SPOOL_BLOCK, this.baseSize);
        if (this.base && end > start) {
          const data = await this.base.read(start, end - start);
          data.copy(out, i * SPOOL_BLOCK, 0, Math.min(data.length, end - start));
        }
      }
      i = j;
    }
    return out;
  }

  private async readUnlocked(offset: number, length: number): Promise<Buffer> {
    this.checkOpen();
    const end = Math.min(offset + length, this._size);
    if (offset < 0 || end <= offset) return Buffer.alloc(0);
    const first = Math.floor(offset / SPOOL_BLOCK);
    const last = Math.floor((end - 1) / SPOOL_BLOCK);
    const blocks = await this.readBlocks(first, last - first + 1);
    const from = offset - first * SPOOL_BLOCK;
    return blocks.subarray(from, from + (end - offset));
  }

  /** Encrypts `plain` (whole blocks starting at block `first`) under a new write number and stores it. */
  private async storeBlocks(first: number, plain: Buffer): Promise<void> {
    const w = ++this.writeNo;
    if (w > 2 ** 48) throw new Error('spool write counter exhausted');
    const c = this.cipher(w, first);
    const sealed = c.update(plain);
    await this.fh.write(sealed, 0, sealed.length, first * SPOOL_BLOCK);
    const count = plain.length / SPOOL_BLOCK;
    for (let i = 0; i < count; i++) this.setGen(first + i, w);
  }

  private async writeUnlocked(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen();
    if (data.length === 0) return;
    const end = offset + data.length;
    const first = Math.floor(offset / SPOOL_BLOCK);
    const last = Math.floor((end - 1) / SPOOL_BLOCK);
    const count = last - first + 1;
    // Only the edge blocks can hold bytes this write does not replace. Past `size` they are zeros.
    const needHead = offset % SPOOL_BLOCK !== 0;
    const needTail = end % SPOOL_BLOCK !== 0 && end < this._size;
    const plain = Buffer.alloc(count * SPOOL_BLOCK);
    if (needHead) (await this.readBlocks(first, 1)).copy(plain, 0);
    if (needTail && (count > 1 || !needHead)) (await this.readBlocks(last, 1)).copy(plain, (count - 1) * SPOOL_BLOCK);
    Buffer.from(data.buffer, data.byteOffset, data.length).copy(plain, offset - first * SPOOL_BLOCK);
    await this.storeBlocks(first, plain);
    if (end > this._size) this._size = end;
  }

  private async truncateUnlocked(size: number): Promise<void> {
    this.checkOpen();
    if (size < this._size) {
      const cut = size % SPOOL_BLOCK;
      const lastBlock = Math.floor(size / SPOOL_BLOCK);
      if (cut !== 0) {
        // Keep the invariant "bytes past size read as zeros" for the block the new end falls into.
        const block = await this.readBlocks(lastBlock, 1);
        block.fill(0, cut);
        await this.storeBlocks(lastBlock, block);
      }
      const firstGone = cut === 0 ? lastBlock : lastBlock + 1;
      if (firstGone < this.gens.length) this.gens.fill(0, firstGone);
      this.baseSize = Math.min(this.baseSize, size);
      if (this.baseSize === 0) this.base = null;
      await this.fh.truncate(firstGone * SPOOL_BLOCK);
    }
    this._size = size;
  }
}
