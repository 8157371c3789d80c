// raw-http.ts against a real node:http server on loopback: parsing, keep-alive, backpressure, failures.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';

import { RawHttp, type RawResponse } from '../../src/store/raw-http.js';

const timeoutError = (m: string) => Object.assign(new Error(m), { name: 'TimeoutError' });
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(t: Test, handler: Handler): Promise<{ port: number; connections: () => number; server: http.Server }> {
  let connections = 0;
  const server = http.createServer(handler);
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, server };
}

function client(t: Test, socketTimeoutMs = 5000): RawHttp {
  const c = new RawHttp({ connectTimeoutMs: 2000, socketTimeoutMs });
  t.teardown(() => c.close());
  return c;
}

const get = (c: RawHttp, port: number, path = '/', signal?: AbortSignal) =>
  c.request({ hostname: '127.0.0.1', port, method: 'GET', path, headers: { host: `127.0.0.1:${port}` }, signal, timeoutError });

async function body(res: RawResponse): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of res) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

t.test('status, lower-case headers and an exact body; keep-alive reuses one connection', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const s = await serve(t, (req, res) => {
    res.setHeader('ETag', '"abc"');
    res.setHeader('X-Amz-Meta-Two', ['a', 'b']);
    res.setHeader('Content-Length', data.length);
    res.end(data);
  });
  const c = client(t);
  for (let i = 0; i < 3; i++) {
    const res = await get(c, s.port);
    t.equal(res.statusCode, 200);
    t.equal(res.headers.etag, '"abc"');
    t.equal(res.headers['x-amz-meta-two'], 'a, b');
    t.ok((await body(res)).equals(data), `body ${i} exact`);
    t.equal(res.complete, true);
  }
  t.equal(s.connections(), 1, 'three GETs, one connection');
});

t.test('chunked and error responses', async (t) => {
  const s = await serve(t, (req, res) => {
    if (req.url === '/missing') {
      res.statusCode = 404;
      res.end('<Error><Code>NoSuchKey</Code></Error>');
      return;
    }
    res.write('hello ');
    setTimeout(() => res.end('world'), 20);
  });
  const c = client(t);
  const res = await get(c, s.port);
  t.equal(res.headers['transfer-encoding'], 'chunked');
  t.equal((await body(res)).toString(), 'hello world');
  const missing = await get(c, s.port, '/missing');
  t.equal(missing.statusCode, 404);
  t.match((await body(missing)).toString(), /NoSuchKey/);
});

t.test('a slow reader pauses the socket: what waits unread stays bounded', async (t) => {
  const piece = Buffer.alloc(1024 * 1024, 1);
  const s = await serve(t, (req, res) => {
    res.setHeader('Content-Length', piece.length * 64);
    let n = 0;
    const pump = () => { while (n < 64) { n++; if (!res.write(piece)) return res.once('drain', pump); } res.end(); };
    pump();
  });
  const c = client(t);
  const res = await get(c, s.port);
  await new Promise((r) => setTimeout(r, 300));
  t.ok(res.readableLength <= 1024 * 1024, `buffered ${res.readableLength} bytes while nobody read`);
  t.equal((await body(res)).length, piece.length * 64, 'then all of it arrives');
});

t.test('a body cut short fails the stream, and the next GET gets a new connection', async (t) => {
  const s = await serve(t, (req, res) => {
    if (req.url === '/cut') {
      res.setHeader('Content-Length', 1000);
      res.write(Buffer.alloc(400));
      setTimeout(() => res.socket!.destroy(), 20);
      return;
    }
    res.end('ok');
  });
  const c = client(t);
  const res = await get(c, s.port, '/cut');
  await t.rejects(body(res), { code: 'ECONNRESET' });
  t.equal(res.complete, false);
  t.equal((await body(await get(c, s.port))).toString(), 'ok');
  t.equal(s.connections(), 2);
});

t.test('a connection the server closed while idle is replaced transparently', async (t) => {
  const s = await serve(t, (req, res) => {
    res.end('ok');
    setTimeout(() => req.socket.destroy(), 50); // as a server's keep-alive timeout does
  });
  const c = client(t);
  t.equal((await body(await get(c, s.port))).toString(), 'ok');
  await new Promise((r) => setTimeout(r, 200));
  t.equal((await body(await get(c, s.port))).toString(), 'ok');
  t.equal(s.connections(), 2);
});

t.test('abort before the answer rejects; abort in the body fails the stream and drops the socket', async (t) => {
  const s = await serve(t, (req, res) => {
    if (req.url === '/stall') return; // never answers
    res.setHeader('Content-Length', 1000);
    res.write(Buffer.alloc(10)); // and never finishes
  });
  const c = client(t);
  const early = new AbortController();
  const pending = get(c, s.port, '/stall', early.signal);
  setTimeout(() => early.abort(), 50);
  await t.rejects(pending, { name: 'AbortError' });

  const late = new AbortController();
  const res = await get(c, s.port, '/partial', late.signal);
  const reading = body(res);
  setTimeout(() => late.abort(), 50);
  await t.rejects(reading, { name: 'AbortError' });
  t.equal(res.complete, false);
});

t.test('a stalled body times out with TimeoutError', async (t) => {
  const s = await serve(t, (req, res) => {
    res.setHeader('Content-Length', 1000);
    res.write(Buffer.alloc(10));
  });
  const c = client(t, 300);
  const res = await get(c, s.port);
  await t.rejects(body(res), { message: /aborted/ });
  t.equal(res.complete, false);
});

t.test('a pooled socket dropped without an answer is retried once on a new connection', async (t) => {
  let drops = 0;
  const s = await serve(t, (req, res) => {
    if (req.url === '/drop-once' && drops++ === 0) {
      req.socket.destroy(); // the race: the server closed the idle socket as the request went out
      return;
    }
    res.end('ok');
  });
  const c = client(t);
  t.equal((await body(await get(c, s.port))).toString(), 'ok');
  t.equal((await body(await get(c, s.port, '/drop-once'))).toString(), 'ok');
  t.equal(drops, 2);
  t.equal(s.connections(), 2);
  // On a fresh connection the same failure is not hidden.
  const fresh = client(t);
  drops = 0;
  await t.rejects(get(fresh, s.port, '/drop-once'), { code: 'ECONNRESET' });
});
