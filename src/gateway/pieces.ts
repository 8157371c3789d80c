/** A readable's pieces as it pushed them, for the gateway's request and response bodies. */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

/** Pieces a readable holds at most before it is paused, while piecesOf's consumer is busy. */
const PIECES_AHEAD = 4;

/**
 * The pieces a readable pushes, each as it was pushed. A Readable's own async iterator read()s,
 * which joins whatever is buffered into one new buffer: a copy of most of a GET body (and as much
 * garbage) when the decoder pushes chunks faster than the response takes them.
 */
export async function* piecesOf(stream: Readable): AsyncGenerator<Buffer, void, undefined> {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: { err: unknown } | undefined;
  let wake: (() => void) | undefined;
  const onData = (piece: Buffer) => {
    queue.push(piece);
    if (queue.length >= PIECES_AHEAD) stream.pause();
    wake?.();
  };
  // Ends on 'end'; rejects on 'error' or a close before the end. The writable side of a Transform is not waited for.
  finished(stream, { writable: false }).then(
    () => (ended = true),
    (err: unknown) => (failure = { err }),
  ).finally(() => wake?.());
  stream.on('data', onData);
  try {
    for (;;) {
      if (failure) throw failure.err;
      const piece = queue.shift();
      if (piece) {
        if (queue.length === 0 && stream.isPaused()) stream.resume();
        yield piece;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    stream.off('data', onData);
    // A consumer that stopped early (an error, a client gone) wants no more: as the async iterator does.
    if (!ended && !failure) stream.destroy();
  }
}
