/**
 * File handle numbers handed to the kernel (fuse_file_info.fh). 0 is never used (fuse-native treats
 * it as "no handle"); numbers are recycled only after the 32-bit space wraps.
 */
import { FsError } from './errno.js';

export class HandleTable<H> {
  private readonly handles = new Map<number, H>();
  private next = 1;

  add(handle: H): number {
    for (;;) {
      const fh = this.next;
      this.next = this.next >= 0xfffffffe ? 1 : this.next + 1;
      if (!this.handles.has(fh)) {
        this.handles.set(fh, handle);
        return fh;
      }
    }
  }

  get(fh: number): H {
    const h = this.handles.get(fh);
    if (h === undefined) throw new FsError('EBADF', `no open handle ${fh}`);
    return h;
  }

  find(fh: number): H | undefined {
    return this.handles.get(fh);
  }

  remove(fh: number): H | undefined {
    const h = this.handles.get(fh);
    this.handles.delete(fh);
    return h;
  }

  values(): IterableIterator<H> {
    return this.handles.values();
  }

  get size(): number {
    return this.handles.size;
  }
}
