/**
 * The pieces of a byte stream exactly as they were pushed. `for await` over a Readable calls read(),
 * which joins whatever is buffered into a new Buffer: an allocation and a copy per join (most of a
 * streamed GET's body when the reader waits on readahead). Flowing mode hands over each piece; the
 * stream is paused while `highWater` bytes wait here. Pieces that arrived before an error are
 * yielded before it is thrown. A consumer that stops early (break, throw) destroys the stream, as
 * the async iterator does. Used by the chunk fetcher (GET bodies) and the gateway (response bodies).
 */
import { finished, type Readable } from 'node:stream';

export async function* streamPieces(stream: Readable, highWater = 256 * 1024): AsyncGenerator<Buffer, void, undefined> {
  const queue: Buffer[] = [];
  let head = 0;
  let queued = 0;
  let done = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const onData = (piece: Buffer) => {
    queue.push(piece);
    queued += piece.length;
    if (queued >= highWater) stream.pause();
    wake?.();
  };
  stream.on('data', onData);
  // The readable end is enough: a Transform's writable side is not waited for.
  const stopWatching = finished(stream, { writable: false }, (err) => {
    if (err) failure = err;
    done = true;
    wake?.();
  });
  try {
    for (;;) {
      if (head < queue.length) {
        const piece = queue[head]!;
        queue[head++] = undefined as unknown as Buffer;
        if (head === queue.length) {
          queue.length = 0;
          head = 0;
        }
        queued -= piece.length;
        if (queued < highWater && stream.isPaused() && !done) stream.resume();
        yield piece;
        continue;
      }
      if (failure) throw failure;
      if (done) return;
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = null;
    }
  } finally {
    stream.off('data', onData);
    stopWatching();
    if (!done) stream.destroy();
  }
}
