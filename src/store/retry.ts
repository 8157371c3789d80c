// Our own retry policy for the one failure the SDK cannot retry: a response
// body that breaks off after the headers arrived (the SDK has already
// returned by then). Request-level retries are the SDK's, or on the lean data
// path (lean-http.ts) its own with the same backoff.

const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;

/** Errors that mean "the connection died while streaming the body"; re-requesting is safe. */
const BODY_INTERRUPTION_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export class ShortBodyError extends Error {
  override name = 'ShortBodyError';
  constructor(readonly expected: number, readonly received: number) {
    super(`response body ended after ${received} of ${expected} bytes`);
  }
}

export function isBodyInterruption(err: unknown): boolean {
  if (err instanceof ShortBodyError) return true;
  if (typeof err !== 'object' || err === null) return false;
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' && BODY_INTERRUPTION_CODES.has(code)) return true;
  // Socket idle timeouts from @smithy/node-http-handler have no code.
  if (name === 'TimeoutError') return true;
  return message === 'aborted' || message === 'socket hang up';
}

/** Exponential backoff with full jitter; attempt is 1 for the first retry. */
export function backoffDelayMs(attempt: number): number {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt - 1));
  return Math.random() * ceiling;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
