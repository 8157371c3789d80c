// GET responses read straight off a plain-HTTP keep-alive socket. node:http's parser copies every
// body piece out of the socket's buffer and hands it through an IncomingMessage stream: measured
// here at 0.84-0.94 CPU s/GiB for a 1 GiB body, where http-parser-js, which returns views of the
// socket's own buffers, took 0.38-0.64 (the rest of the difference was GC of the copies).
// Used by lean-http.ts for GETs to http: endpoints only; https keeps node:https and its agent.

import net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';

import { HTTPParser, type OnBodyParser, type OnHeadersCompleteParser } from 'http-parser-js';

type Parser = InstanceType<typeof HTTPParser>;

export interface RawHttpOptions {
  connectTimeoutMs: number;
  socketTimeoutMs: number;
  /** Idle keep-alive sockets kept per host:port. */
  maxIdlePerHost?: number;
  /** An idle socket is closed after this long, before servers' usual 5 s keep-alive timeout. */
  idleMs?: number;
}

export interface RawRequest {
  hostname: string;
  port: number;
  method: 'GET';
  path: string;
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** Error for a connect that takes too long, and for a stalled socket. */
  timeoutError: (message: string) => Error;
}

/** A response body that looks to its readers like http.IncomingMessage (the parts lean-http uses). */
export class RawResponse extends Readable {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  complete = false;
  private paused: net.Socket | null = null;

  constructor(private readonly onDestroy: (err: Error | null) => void) {
    super({ highWaterMark: 256 * 1024 });
  }

  /** Pushes a view of the socket's buffer; pauses the socket while the reader is behind. */
  deliver(socket: net.Socket, piece: Buffer): void {
    if (!this.push(piece) && !this.paused) {
      this.paused = socket;
      socket.pause();
    }
  }

  override _read(): void {
    const s = this.paused;
    this.paused = null;
    s?.resume();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.onDestroy(err);
    cb(err);
  }
}

interface Conn {
  socket: net.Socket;
  parser: Parser;
  key: string;
  idleTimer: NodeJS.Timeout | null;
  /** The response being read on this connection. */
  current: RawResponse | null;
  /** Whether any byte of the current response arrived (a reused socket closed by the server sends none). */
  answered: boolean;
  fail: ((err: Error) => void) | null;
}

export class RawHttp {
  private readonly idle = new Map<string, Conn[]>();
  private readonly maxIdle: number;
  private readonly idleMs: number;

  constructor(private readonly opts: RawHttpOptions) {
    this.maxIdle = opts.maxIdlePerHost ?? 16;
    this.idleMs = opts.idleMs ?? 4000;
  }

  /** Resolves with the response once its headers arrived; its body is then read from the returned stream. */
  async request(req: RawRequest): Promise<RawResponse> {
    const key = `${req.hostname}:${req.port}`;
    // A pooled socket the server closed meanwhile fails before any answer: once more on a new one.
    const reused = this.takeIdle(key);
    if (reused) {
      try {
        return await this.exchange(reused, req);
      } catch (err) {
        if (!closedUnanswered(err) || req.signal?.aborted) throw err;
      }
    }
    return this.exchange(await this.connect(key, req), req);
  }

  /** Closes idle sockets (busy ones close when their response ends or fails). */
  close(): void {
    for (const conns of this.idle.values()) for (const c of conns) c.socket.destroy();
    this.idle.clear();
  }

  private takeIdle(key: string): Conn | undefined {
    const conns = this.idle.get(key);
    const conn = conns?.pop();
    if (conn?.idleTimer) clearTimeout(conn.idleTimer);
    conn?.socket.ref();
    return conn;
  }

  private connect(key: string, req: RawRequest): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ host: req.hostname, port: req.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy(req.timeoutError(`Socket timed out without establishing a connection within ${this.opts.connectTimeoutMs} ms`));
      }, this.opts.connectTimeoutMs);
      timer.unref();
      const onAbort = () => socket.destroy(abortError(req.signal!));
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
      };
      socket.once('error', (err) => {
        settle();
        reject(err);
      });
      socket.once('connect', () => {
        settle();
        socket.removeAllListeners('error');
        resolve(this.wire(key, socket));
      });
    });
  }

  /** Parser and socket events of a new connection; they live as long as the socket. */
  private wire(key: string, socket: net.Socket): Conn {
    const parser = new HTTPParser(HTTPParser.RESPONSE);
    const conn: Conn = { socket, parser, key, idleTimer: null, current: null, answered: false, fail: null };
    socket.setTimeout(this.opts.socketTimeoutMs);
    socket.on('timeout', () => socket.destroy(Object.assign(new Error(`Connection timed out after ${this.opts.socketTimeoutMs} ms`), { name: 'TimeoutError' })));
    socket.on('data', (data: Buffer) => {
      conn.answered = true;
      const res = parser.execute(data);
      if (res instanceof Error) socket.destroy(Object.assign(res, { code: 'HPE_INVALID' }));
    });
    const gone = (err?: Error) => {
      this.dropIdle(conn);
      const e = err ?? Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      conn.fail?.(e);
    };
    socket.on('error', (err) => gone(err));
    socket.on('close', () => gone());
    socket.on('end', () => socket.destroy());
    return conn;
  }

  private exchange(conn: Conn, req: RawRequest): Promise<RawResponse> {
    const { socket, parser } = conn;
    parser.reinitialize(HTTPParser.RESPONSE);
    conn.answered = false;
    return new Promise<RawResponse>((resolve, reject) => {
      let headersDone = false;
      let keepAlive = false;
      const signal = req.signal;
      const res = new RawResponse((err) => {
        // The reader let go before the end: the rest of the body is unread, so the socket cannot be reused.
        if (!res.complete) socket.destroy();
        void err;
      });
      const onAbort = () => {
        const err = abortError(signal!);
        if (!headersDone) socket.destroy(err);
        else if (!res.complete) res.destroy(err);
      };
      const detach = () => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      conn.current = res;
      conn.fail = (err) => {
        conn.fail = null;
        conn.current = null;
        detach();
        if (!headersDone) reject(Object.assign(err, { beforeAnswer: !conn.answered }));
        else if (!res.complete) res.destroy(Object.assign(new Error('aborted', { cause: err }), { code: 'ECONNRESET' }));
      };
      const onHeaders: OnHeadersCompleteParser = (info) => {
        headersDone = true;
        keepAlive = info.shouldKeepAlive;
        res.statusCode = info.statusCode;
        res.headers = headerObject(info.headers);
        resolve(res);
      };
      const onBody: OnBodyParser = (chunk, offset, length) => {
        res.deliver(socket, chunk.subarray(offset, offset + length));
      };
      parser[HTTPParser.kOnHeadersComplete] = onHeaders;
      parser[HTTPParser.kOnBody] = onBody;
      parser[HTTPParser.kOnMessageComplete] = () => {
        res.complete = true;
        conn.fail = null;
        conn.current = null;
        detach();
        res.push(null);
        if (keepAlive && !res.destroyed) this.release(conn);
        else socket.destroy();
      };
      const lines = [`${req.method} ${req.path} HTTP/1.1`];
      for (const [name, value] of Object.entries(req.headers)) lines.push(`${name}: ${value}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
  }

  private release(conn: Conn): void {
    const conns = this.idle.get(conn.key) ?? [];
    if (conns.length >= this.maxIdle || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    conn.socket.resume();
    conn.idleTimer = setTimeout(() => conn.socket.destroy(), this.idleMs);
    conn.idleTimer.unref();
    conns.push(conn);
    this.idle.set(conn.key, conns);
    conn.socket.unref();
  }

  private dropIdle(conn: Conn): void {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    const conns = this.idle.get(conn.key);
    const at = conns?.indexOf(conn) ?? -1;
    if (at >= 0) conns!.splice(at, 1);
  }
}

/** The server had closed the pooled socket: nothing was answered and nothing timed out. */
function closedUnanswered(err: unknown): boolean {
  const e = err as { beforeAnswer?: boolean; code?: string; name?: string };
  return e.beforeAnswer === true && e.name !== 'TimeoutError' && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
}

/** Lower-case names; repeated headers joined with ", " (set-cookie is not among S3's). */
function headerObject(flat: string[]): IncomingHttpHeaders {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}
