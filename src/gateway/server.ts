/**
 * The gateway's listeners: HTTPS (PBS and remote clients) and plain HTTP (loopback), HTTP/1.1 with
 * keep-alive, guarded against slow clients: a header deadline, an idle-socket timeout (no bytes in
 * either direction), and a connection cap.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Gateway } from './gateway.js';
import type { TlsPair } from './tls.js';

export interface ListenerOptions {
  host: string;
  port: number;
  /** HTTPS when given. */
  tls?: TlsPair;
}

export interface TimeoutOptions {
  /** Whole request head must arrive within this (default 20 s). */
  headersTimeoutMs?: number;
  /** A socket with no traffic either way for this long is closed (default 60 s). */
  idleTimeoutMs?: number;
  /** Idle keep-alive connections are kept this long (default 65 s). */
  keepAliveTimeoutMs?: number;
  /** At most this many open connections per listener (default 1024). */
  maxConnections?: number;
}

export interface RunningListener {
  url: string;
  address: AddressInfo;
  server: http.Server;
  close(): Promise<void>;
}

export async function listen(gateway: Gateway, opts: ListenerOptions, timeouts: TimeoutOptions = {}): Promise<RunningListener> {
  // Node enforces headersTimeout only when it checks connections (every 30 s by default): check
  // often enough that a slow-loris client is cut near the header timeout, not up to 30 s later.
  const connectionsCheckingInterval = Math.min(30_000, Math.max(250, Math.floor((timeouts.headersTimeoutMs ?? 20_000) / 4)));
  const serverOptions: http.ServerOptions = { maxHeaderSize: 64 * 1024, keepAlive: true, requestTimeout: 0, noDelay: true, connectionsCheckingInterval };
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] }, gateway.listener)
    : http.createServer(serverOptions, gateway.listener);
  server.headersTimeout = timeouts.headersTimeoutMs ?? 20_000;
  server.keepAliveTimeout = timeouts.keepAliveTimeoutMs ?? 65_000;
  server.maxConnections = timeouts.maxConnections ?? 1024;
  const idle = timeouts.idleTimeoutMs ?? 60_000;
  server.setTimeout(idle, (socket: Socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host}:${address.port}`,
    address,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Requests in flight get a moment to finish, then their sockets go too.
        setTimeout(() => server.closeAllConnections(), 5_000).unref();
      }),
  };
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** "host:port", "[v6]:port" or ":port" / "port" (all interfaces... no: loopback by default). */
export function parseHostPort(text: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`expected HOST:PORT, got "${text}"`);
  const host = m[1] ?? (m[2] === undefined || m[2] === '' ? defaultHost : m[2]);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in "${text}"`);
  return { host, port };
}
