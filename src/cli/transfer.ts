/** Streaming helpers for put/get/cat: local files and stdin/stdout on one side, the engine on the other. */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectWriter } from '../engine/index.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import type { Progress } from './progress.js';

const READ_BUFFER = 1024 * 1024;

export interface LocalInput {
  stream: Readable;
  /** Known for regular files. */
  size?: number;
  name: string;
}

export async function openLocalInput(local: string): Promise<LocalInput> {
  if (local === '-') return { stream: process.stdin, name: 'stdin' };
  const st = await stat(local);
  if (st.isDirectory()) throw new CliError(ExitCode.USAGE, `${local} is a directory (put copies one file)`);
  return {
    stream: createReadStream(local, { highWaterMark: READ_BUFFER }),
    size: st.isFile() ? st.size : undefined,
    name: path.basename(local),
  };
}

/** Feeds `input` into `writer` (awaiting backpressure) and completes the upload; aborts it on any failure. */
export async function upload(
  input: Readable,
  writer: ObjectWriter,
  progress: Progress,
  signal: AbortSignal,
): Promise<{ etag: string; size: number }> {
  const onAbort = () => input.destroy(new CliError(ExitCode.INTERRUPTED, 'interrupted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of input) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      await writer.write(buf);
      progress.add(buf.length);
    }
    if (signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
    return await writer.close();
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    progress.stop();
  }
}

function counter(progress: Progress): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      progress.add(chunk.length);
      cb(null, chunk);
    },
  });
}

/** Streams to stdout without ending it (several objects may follow). */
export async function toStdout(source: Readable, progress: Progress, signal: AbortSignal): Promise<void> {
  try {
    await pipeline(source, counter(progress), process.stdout, { end: false, signal });
  } catch (err) {
    if (signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
    throw err;
  } finally {
    progress.stop();
  }
}

/**
 * Streams into a temporary file next to `dest` and renames it into place only after the whole object
 * was authenticated, so a failed or interrupted download never leaves a partial file at `dest`.
 */
export async function toFile(source: Readable, dest: string, progress: Progress, signal: AbortSignal): Promise<number> {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(4).toString('hex')}.s3cryptfs-part`);
  let bytes = 0;
  try {
    const count = counter({ add: (n) => { bytes += n; progress.add(n); }, stop() {} });
    await pipeline(source, count, createWriteStream(tmp, { flags: 'wx', mode: 0o666 }), { signal });
    await rename(tmp, dest);
    return bytes;
  } catch (err) {
    source.destroy();
    await unlink(tmp).catch(() => {});
    if (signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
    throw err;
  } finally {
    progress.stop();
  }
}

/** `dest` itself, or dest/NAME when dest is an existing directory or ends with "/". */
export async function resolveLocalDest(dest: string, name: string): Promise<string> {
  if (dest.endsWith('/') || dest.endsWith(path.sep)) return path.join(dest, name);
  try {
    if ((await stat(dest)).isDirectory()) return path.join(dest, name);
  } catch {
    // does not exist yet: a file name
  }
  return dest;
}

/** Names the object in an error's message ("s3://b/k: chunk 3 failed authentication"). */
export function inContext<T>(what: string, p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    if (err instanceof Error && !(err instanceof CliError) && !err.message.includes(what)) {
      try {
        err.message = `${what}: ${err.message}`;
      } catch {
        // read-only message: leave it
      }
    }
    throw err;
  });
}
