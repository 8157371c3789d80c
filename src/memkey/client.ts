/**
 * Consumer side of the memkey Unix socket, for daemons that need the master key (mount, serve-s3).
 *
 *   fetchKey(socket, {timeoutMs, onWaiting})  one key: waits until an administrator delivers it.
 *   watchKey(socket, {onKey, onState})        a subscription: the key now and after every
 *                                             memkey-server restart (reconnects with backoff).
 *
 * Keys handed out are fresh copies; the receiver owns and should zero them.
 */
import net from 'node:net';
import { MemkeyError } from './errors.js';
import { FRAME_KEY, FRAME_STATUS, FrameReader, type SocketStatus } from './frames.js';

export const DEFAULT_WAIT_TIMEOUT_MS = 300_000;

export interface KeyInfo {
  keyId: string;
  /** Identity fingerprint of the memkey-server that holds the key. */
  fingerprint: string;
}

export interface FetchedKey extends KeyInfo {
  key: Uint8Array;
}

export type WaitingInfo = SocketStatus & { socketPath: string };

interface ConnectionHandlers {
  onStatus(s: SocketStatus): void;
  onKey(key: Uint8Array, keyId: string): void;
  onClose(): void;
}

interface Connection {
  close(): void;
}

/** Connects once; rejects with UNREACHABLE (one clear line) when nothing answers on the socket. */
function connect(socketPath: string, h: ConnectionHandlers): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const reader = new FrameReader();
    let connected = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      reader.wipe();
      sock.destroy();
    };
    sock.once('connect', () => {
      connected = true;
      resolve({ close });
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) reject(unreachable(socketPath, err));
    });
    sock.on('close', () => {
      reader.wipe();
      if (connected && !closed) {
        closed = true;
        h.onClose();
      }
    });
    sock.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        if (closed) break;
        if (f.type === FRAME_STATUS) {
          let s: SocketStatus | undefined;
          try {
            s = JSON.parse(f.payload.toString('utf8')) as SocketStatus;
          } catch {
            s = undefined;
          }
          if (s && typeof s.fingerprint === 'string') h.onStatus(s);
        } else if (f.type === FRAME_KEY && f.payload.length === 48) {
          const keyId = f.payload.subarray(0, 16).toString('hex');
          const key = new Uint8Array(f.payload.subarray(16, 48));
          h.onKey(key, keyId);
        }
        f.payload.fill(0);
      }
    });
  });
}

export function unreachable(socketPath: string, err: NodeJS.ErrnoException): MemkeyError {
  const why: Record<string, string> = {
    ENOENT: 'no socket there; is s3cryptfs memkey-server running?',
    ECONNREFUSED: 'nothing is listening (a stale socket); is s3cryptfs memkey-server running?',
    EACCES: 'permission denied (the socket is owner-only: run as the memkey-server user)',
    ENOTSOCK: 'not a socket',
  };
  return new MemkeyError('UNREACHABLE', `unreachable key server: ${socketPath}: ${why[err.code ?? ''] ?? err.code ?? err.message}`);
}

export interface FetchKeyOptions {
  /** Give up after this long without a key (TIMEOUT); 0 waits forever [300 s]. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once if the server does not hold a key yet, e.g. to print where to deliver it. */
  onWaiting?: (info: WaitingInfo) => void;
  /** Pause before reconnecting when the server goes away while we wait [250 ms]. */
  reconnectMs?: number;
}

/**
 * Resolves with the key as soon as the memkey-server holds one. The first connection must
 * succeed (UNREACHABLE otherwise); if the server restarts while we wait, we reconnect.
 */
export function fetchKey(socketPath: string, opts: FetchKeyOptions = {}): Promise<FetchedKey> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  return new Promise<FetchedKey>((resolve, reject) => {
    let done = false;
    let conn: Connection | undefined;
    let fingerprint = '';
    let announced = false;
    let lostServer = false;
    let retryTimer: NodeJS.Timeout | undefined;
    const timer = timeoutMs > 0
      ? setTimeout(() => finish(new MemkeyError('TIMEOUT', `no master key from the key server at ${socketPath} within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}${lostServer ? ' (the server went away while we waited)' : ''}${fingerprint ? `; deliver it to fingerprint ${fingerprint}` : ''}`)), timeoutMs)
      : undefined;
    const onAbort = () => finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new MemkeyError('TIMEOUT', 'stopped waiting for the master key'));
    function finish(err: Error | null, value?: FetchedKey): void {
      if (done) {
        value?.key.fill(0);
        return;
      }
      done = true;
      if (timer) clearTimeout(timer);
      if (retryTimer) clearTimeout(retryTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      conn?.close();
      if (err) reject(err);
      else resolve(value!);
    }
    const handlers: ConnectionHandlers = {
      onStatus(s) {
        fingerprint = s.fingerprint;
        if (s.state === 'waiting' && !announced) {
          announced = true;
          opts.onWaiting?.({ ...s, socketPath });
        }
      },
      onKey(key, keyId) {
        finish(null, { key, keyId, fingerprint });
      },
      onClose() {
        if (done) return;
        lostServer = true;
        scheduleReconnect();
      },
    };
    const scheduleReconnect = () => {
      retryTimer = setTimeout(() => {
        if (done) return;
        connect(socketPath, handlers).then(
          (c) => (done ? c.close() : (conn = c)),
          () => scheduleReconnect(),
        );
      }, opts.reconnectMs ?? 250);
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    connect(socketPath, handlers).then(
      (c) => (done ? c.close() : (conn = c)),
      (err: Error) => finish(err),
    );
  });
}

export type WatchState = 'connecting' | 'waiting' | 'ready' | 'disconnected' | 'stopped';

export interface WatchHandlers {
  /** A key (a copy the handler owns): after the first connection and after every reconnection. */
  onKey(key: Uint8Array, info: KeyInfo): void;
  /** State changes; `detail` explains disconnections. */
  onState?(state: WatchState, detail?: { status?: SocketStatus; error?: MemkeyError }): void;
}

export interface WatchOptions {
  /** First and largest pause between reconnection attempts [200 ms, 5 s]. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export interface KeyWatcher {
  readonly state: WatchState;
  /** Key id of the last key received. */
  readonly keyId: string | undefined;
  /** Resolves once a key has been received (the readiness signal daemons report). */
  readonly ready: Promise<KeyInfo>;
  stop(): void;
}

/**
 * Subscribes to the memkey-server's key: keeps a connection open, reconnects (with backoff) when
 * the server restarts or is not there yet, and calls onKey every time the server (re)delivers it.
 */
export function watchKey(socketPath: string, handlers: WatchHandlers, opts: WatchOptions = {}): KeyWatcher {
  const minMs = opts.reconnectMinMs ?? 200;
  const maxMs = opts.reconnectMaxMs ?? 5000;
  let state: WatchState = 'connecting';
  let keyId: string | undefined;
  let conn: Connection | undefined;
  let timer: NodeJS.Timeout | undefined;
  let delay = minMs;
  let resolveReady!: (info: KeyInfo) => void;
  const ready = new Promise<KeyInfo>((r) => (resolveReady = r));
  let fingerprint = '';

  const setState = (s: WatchState, detail?: { status?: SocketStatus; error?: MemkeyError }) => {
    if (state === 'stopped') return;
    const changed = s !== state;
    state = s;
    if (changed || detail?.error) handlers.onState?.(s, detail);
  };
  const attempt = () => {
    timer = undefined;
    if (state === 'stopped') return;
    connect(socketPath, {
      onStatus(s) {
        fingerprint = s.fingerprint;
        delay = minMs;
        if (s.state === 'waiting') setState('waiting', { status: s });
      },
      onKey(key, id) {
        if (state === 'stopped') {
          key.fill(0);
          return;
        }
        keyId = id;
        setState('ready');
        const info = { keyId: id, fingerprint };
        resolveReady(info);
        handlers.onKey(key, info);
      },
      onClose() {
        conn = undefined;
        if (state === 'stopped') return;
        setState('disconnected', { error: new MemkeyError('UNREACHABLE', `the key server at ${socketPath} went away; reconnecting`) });
        schedule();
      },
    }).then(
      (c) => {
        if (state === 'stopped') c.close();
        else conn = c;
      },
      (err: MemkeyError) => {
        setState('disconnected', { error: err });
        schedule();
      },
    );
  };
  const schedule = () => {
    if (state === 'stopped' || timer) return;
    timer = setTimeout(attempt, delay);
    delay = Math.min(maxMs, delay * 2);
  };
  attempt();
  return {
    get state() {
      return state;
    },
    get keyId() {
      return keyId;
    },
    ready,
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      state = 'stopped';
      conn?.close();
      conn = undefined;
    },
  };
}

/** The one status line a waiting consumer prints. */
export function waitingLine(info: WaitingInfo, timeoutMs: number): string {
  const where = info.adminUrls.length ? ` at ${info.adminUrls.join(' or ')}` : '';
  const limit = timeoutMs > 0 ? `; giving up in ${Math.round(timeoutMs / 1000)} s` : '';
  return `waiting for the master key: deliver it with \`s3cryptfs memkey-admin key send\` to memkey-server${where}, fingerprint ${info.fingerprint} (socket ${info.socketPath}${limit})`;
}
