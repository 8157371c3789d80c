/**
 * Write data lent past the end of a write() call. The usual contract (src/fs, EngineWriter) is that
 * write() keeps no reference to its data once it settles, so a writer that seals off the event loop
 * has to copy the data first. A caller whose buffer stays untouched until it gets it back (the fuse3
 * binding's pooled receive blocks) lends it instead: a writer that takes the lease may keep reading
 * the data after write() settled and calls release() exactly once when it no longer does. The lender
 * reclaims an untaken lease after write() settled (a layer in between copied the data, or passed on
 * another view of it); then nobody else calls release(). So the buffer goes back exactly once, and
 * never while something still reads it.
 */
interface Lease {
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly release: () => void;
}

const leases = new WeakMap<ArrayBufferLike, Lease>();

/** Lends `view` (one lease per underlying buffer at a time) until reclaim() or the taker's release(). */
export function lend(view: Uint8Array, release: () => void): void {
  leases.set(view.buffer, { byteOffset: view.byteOffset, byteLength: view.byteLength, release });
}

/**
 * Takes the lease of exactly `view` (the same bytes that were lent), if there is one: the caller
 * must call the returned function once, when it stops reading `view`. Null when not lent.
 */
export function takeLease(view: Uint8Array): (() => void) | null {
  const l = leases.get(view.buffer);
  if (!l || l.byteOffset !== view.byteOffset || l.byteLength !== view.byteLength) return null;
  leases.delete(view.buffer);
  return once(l.release);
}

/** The lender's side once write() settled: true when the lease was not taken (the buffer is back). */
export function reclaim(view: Uint8Array): boolean {
  const l = leases.get(view.buffer);
  if (!l || l.byteOffset !== view.byteOffset || l.byteLength !== view.byteLength) return false;
  leases.delete(view.buffer);
  return true;
}

function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}
