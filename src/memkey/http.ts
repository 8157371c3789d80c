/**
 * The admin protocol on HTTP or HTTPS: three JSON endpoints, all POST.
 *
 *   /v1/challenge  -> ChallengeMessage
 *   /v1/deliver    DeliveryMessage -> AcceptedMessage
 *   /v1/status     StatusRequest -> StatusMessage (signed)
 *
 * Errors are ErrorMessage bodies. The raw key is never sent on this listener. TLS only adds
 * confidentiality of the metadata; the protocol's security does not depend on it.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { MemkeyCore } from './core.js';
import { MemkeyError, type MemkeyErrorCode } from './errors.js';
import { errorMessage } from './protocol.js';

const MAX_BODY = 16 * 1024;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AdminListenerOptions {
  listen: ListenAddress | string;
  core: MemkeyCore;
  /** PEM certificate chain and key: serve HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface AdminListener {
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

const STATUS_OF: Partial<Record<MemkeyErrorCode, number>> = {
  BAD_MESSAGE: 400,
  CHALLENGE_UNKNOWN: 409,
  KEY_ALREADY_HELD: 409,
  CHALLENGE_EXPIRED: 410,
  DECRYPT_FAILED: 422,
  KEY_MISMATCH: 422,
  LOCKED: 423,
};

/** "HOST:PORT", "[v6]:PORT" or ":PORT" (loopback). */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new MemkeyError('CONFIG', `expected HOST:PORT (e.g. 127.0.0.1:7431 or 0.0.0.0:7431), got "${text}"`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export async function listenAdmin(opts: AdminListenerOptions): Promise<AdminListener> {
  const addr = typeof opts.listen === 'string' ? parseListenAddress(opts.listen) : opts.listen;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void handle(opts.core, req, res);
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new MemkeyError('CONFIG', `cannot listen on ${addr.host}:${addr.port}: ${err.code ?? err.message}`)),
    );
    server.listen(addr.port, addr.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  let closed: Promise<void> | undefined;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host}:${port}`,
    host: addr.host,
    port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

async function handle(core: MemkeyCore, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    const route = (req.url ?? '').split('?')[0];
    if (route !== '/v1/challenge' && route !== '/v1/deliver' && route !== '/v1/status') {
      return send(res, 404, errorMessage('NOT_FOUND', 'no such endpoint (this is an s3cryptfs memkey admin endpoint)'));
    }
    if (req.method !== 'POST') return send(res, 405, errorMessage('METHOD', 'use POST'), { allow: 'POST' });
    const body = await readBody(req);
    if (body === null) return send(res, 413, errorMessage('BAD_MESSAGE', `request body larger than ${MAX_BODY} bytes`));
    let parsed: unknown = {};
    if (body.length > 0) {
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
    }
    if (route === '/v1/challenge') return send(res, 200, core.challenge());
    if (route === '/v1/status') return send(res, 200, core.status(parsed));
    return send(res, 200, core.deliver(parsed));
  } catch (err) {
    if (err instanceof MemkeyError) {
      const status = STATUS_OF[err.code] ?? 500;
      const headers: Record<string, string> = {};
      if (err.retryAfterMs !== undefined) headers['retry-after'] = String(Math.ceil(err.retryAfterMs / 1000));
      return send(res, status, errorMessage(err.code, err.message, err.retryAfterMs), headers);
    }
    send(res, 500, errorMessage('INTERNAL', 'internal error'));
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      else parts.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(parts);
      for (const p of parts) p.fill(0);
      resolve(tooLarge ? null : body);
    });
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
