/**
 * Buffers for the data of large FUSE write requests, reused. The addon copies each request's data
 * out of its receive buffer; into a fresh 1 MiB allocation that costs page faults and garbage
 * collection on every request (measured: most of a write's latency). Blocks handed out here stay
 * resident and come back once the filesystem has applied the write: src/fs's contract is that
 * write() keeps no reference to the data after it settles.
 */
export class WriteBuffers {
  private readonly free: Buffer[] = [];
  /** Blocks handed out (views of them) and not given back yet. */
  private readonly out = new WeakSet<ArrayBuffer>();

  /**
   * @param blockSize the largest request (max_write)
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

  /** Returns the block behind `data` (from take) once nothing reads it any more; others are ignored. */
  give(data: Buffer): void {
    const ab = data.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.out.delete(ab)) return;
    if (this.free.length < this.maxFree) this.free.push(Buffer.from(ab, 0, this.blockSize));
  }

  /** Blocks waiting for reuse (for tests and stats). */
  get pooled(): number {
    return this.free.length;
  }
}
