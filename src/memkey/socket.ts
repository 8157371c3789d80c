/**
 * The consumer side of memkey-server: a Unix socket (mode 0600 by default) where local daemons
 * fetch the raw key. Each connection gets a STATUS frame at once, a KEY frame as soon as (and
 * whenever) a key is held, and stays open so that consumers notice a server restart.
 */
import { mkdirSync } from 'node:fs';
import { chmod, lstat, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { MemkeyCore } from './core.js';
import { MemkeyError } from './errors.js';
import { encodeFrame, FRAME_KEY, FRAME_STATUS, type SocketStatus } from './frames.js';
import { fromHex } from './protocol.js';

export const DEFAULT_SOCKET_MODE = 0o600;

export interface ConsumerSocketOptions {
  path: string;
  /** Permission bits of the socket file [0600]. */
  mode?: number;
  core: MemkeyCore;
  /** Shown to consumers so their status line can say where to deliver. */
  adminUrls?: string[];
  maxConnections?: number;
}

export interface ConsumerSocket {
  path: string;
  connections(): number;
  close(): Promise<void>;
}

export async function listenConsumers(opts: ConsumerSocketOptions): Promise<ConsumerSocket> {
  const socketPath = path.resolve(opts.path);
  const mode = opts.mode ?? DEFAULT_SOCKET_MODE;
  await clearStaleSocket(socketPath);
  const dir = path.dirname(socketPath);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MemkeyError('CONFIG', `cannot create the socket directory ${dir}: ${(err as Error).message}`);
  }

  const sockets = new Set<net.Socket>();
  const status = (): Buffer => {
    const s: SocketStatus = {
      v: 1,
      state: opts.core.hasKey ? 'ready' : 'waiting',
      fingerprint: opts.core.fingerprint,
      keyIds: [...opts.core.keyIds],
      adminUrls: opts.adminUrls ?? [],
    };
    return encodeFrame(FRAME_STATUS, Buffer.from(JSON.stringify(s), 'utf8'));
  };
  const sendKey = (sock: net.Socket) => {
    const key = opts.core.keyCopy();
    const keyId = opts.core.keyId;
    if (!key || !keyId) return;
    const payload = new Uint8Array(16 + key.length);
    payload.set(fromHex(keyId), 0);
    payload.set(key, 16);
    key.fill(0);
    const frame = encodeFrame(FRAME_KEY, payload);
    payload.fill(0);
    sock.write(frame, () => frame.fill(0));
  };

  const server = net.createServer({ allowHalfOpen: false }, (sock) => {
    if (sockets.size >= (opts.maxConnections ?? 64)) {
      sock.destroy();
      return;
    }
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    // Consumers send nothing; anything they do send is read and dropped.
    sock.on('data', () => {});
    sock.write(status());
    sendKey(sock);
  });
  const offKey = opts.core.onKey(() => {
    const s = status();
    for (const sock of sockets) {
      sock.write(s);
      sendKey(sock);
    }
  });
  opts.core.consumerCount = () => sockets.size;

  // The socket file is created by bind(), synchronously inside listen(): a tight umask for that
  // call means it never exists with wider permissions; chmod then sets the configured mode.
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const oldUmask = process.umask(0o177);
      try {
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(oldUmask);
      }
    });
  } catch (err) {
    offKey();
    throw new MemkeyError('CONFIG', `cannot listen on ${socketPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  await chmod(socketPath, mode);

  let closed: Promise<void> | undefined;
  return {
    path: socketPath,
    connections: () => sockets.size,
    close: () =>
      (closed ??= (async () => {
        offKey();
        opts.core.consumerCount = () => 0;
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        });
        await unlink(socketPath).catch(() => {});
      })()),
  };
}

/** A socket file left behind by a server that died is removed; a live server is an error. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  let st;
  try {
    st = await lstat(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new MemkeyError('CONFIG', `${socketPath} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new MemkeyError('CONFIG', `another memkey-server is already listening on ${socketPath}`);
  await unlink(socketPath);
}

/** Mode bits of a socket file (for status output and tests). */
export async function socketMode(socketPath: string): Promise<number> {
  return (await stat(socketPath)).mode & 0o777;
}
