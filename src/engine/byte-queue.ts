/** FIFO of buffers; take() copies only when a request spans pieces. */
export class ByteQueue {
  private pieces: Buffer[] = [];
  private head = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.pieces.push(b);
    this.length += b.length;
  }

  /** Removes the next n bytes (n <= length) as views of the pieces they are in: nothing is copied. */
  takeViews(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const piece = this.pieces[this.head];
      if (piece.length <= left) {
        out.push(piece);
        this.head++;
        left -= piece.length;
      } else {
        out.push(piece.subarray(0, left));
        this.pieces[this.head] = piece.subarray(left);
        left = 0;
      }
    }
    this.length -= n;
    this.compact();
    return out;
  }

  /**
   * Removes the next n bytes. When they span pieces they are copied into `scratch` (if big enough),
   * so the result is only valid until the next take with the same scratch buffer.
   */
  take(n: number, scratch?: Buffer): Buffer {
    const first = this.pieces[this.head];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.head++;
      else this.pieces[this.head] = first.subarray(n);
    } else {
      out = scratch && scratch.length >= n ? scratch.subarray(0, n) : Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const piece = this.pieces[this.head];
        const use = Math.min(piece.length, n - filled);
        piece.copy(out, filled, 0, use);
        filled += use;
        if (use === piece.length) this.head++;
        else this.pieces[this.head] = piece.subarray(use);
      }
    }
    this.length -= n;
    this.compact();
    return out;
  }

  private compact(): void {
    if (this.head > 64) {
      this.pieces = this.pieces.slice(this.head);
      this.head = 0;
    }
  }
}
