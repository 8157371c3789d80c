/**
 * The blocks the addon reads FUSE requests into, reused. A large write's data stays where the kernel
 * put it: JavaScript gets a view of the block, and the addon takes another block for the next
 * request (a fresh 1 MiB allocation per request costs page faults and garbage collection: measured,
 * most of a write's latency). Blocks stay resident and come back once the filesystem has applied the
 * write: src/fs's contract is that write() keeps no reference to the data after it settles.
 */
export class WriteBuffers {
  private readonly free: Buffer[] = [];
  /** Blocks handed out (views of them) and not given back yet. */
  private readonly out = new WeakSet<ArrayBuffer>();

  /**
   * @param blockSize the addon's receive block (max_write + the headers' room)
   * @param maxFree blocks kept for reuse; more given back are left to the garbage collector
   */
  constructor(readonly blockSize: number, readonly maxFree: number) {}

  /** A buffer of exactly `size` bytes (a view of a block; a plain allocation past blockSize). */
  take(size: number): Buffer {
    if (size > this.blockSize) return Buffer.allocUnsafeSlow(size);
    const block = this.free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
    this.out.add(block.buffer as ArrayBuffer);
    return block.subarray(0, size);
  }

  /** Returns the block behind `data` (a view of one from take) once nothing reads it any more; others are ignored. */
  give(data: Uint8Array): void {
    const ab = data.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.out.delete(ab)) return;
    if (this.free.length < this.maxFree) this.free.push(Buffer.from(ab, 0, this.blockSize));
  }

  /** Blocks waiting for reuse (for tests and stats). */
  get pooled(): number {
    return this.free.length;
  }
}
