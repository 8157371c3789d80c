/** Bounded concurrency over an (async) iterable: at most `limit` calls of `fn` in flight. */
export async function forEachLimit<T>(
  items: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const it = (Symbol.asyncIterator in items ? (items as AsyncIterable<T>)[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]()) as
    AsyncIterator<T> | Iterator<T>;
  let failed: unknown;
  const worker = async () => {
    for (;;) {
      if (failed !== undefined) return;
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      // Pulls are serialised by the iterator protocol for generators; each worker awaits its own pull.
      const next = await it.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (err) {
        failed ??= err;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(limit)) }, worker));
}
