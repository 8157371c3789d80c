// End to end over loopback HTTP and a temp Unix socket, all in this process: admin client ->
// memkey-server -> consumers (MemkeySource.load, watchKey), and the ways a delivery must fail.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, lstat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { KeyError, MemkeySource } from '../../src/keys/index.js';
import {
  AdminClient,
  b64u,
  fromB64u,
  generateIdentityFile,
  keyCheckOf,
  loadIdentityFile,
  MemkeyError,
  startEmbeddedMemkey,
  startMemkeyServer,
  watchKey,
  type MemkeyServer,
  type MemkeyServerOptions,
  type ServerIdentity,
} from '../../src/memkey/index.js';

const master = new Uint8Array(randomBytes(32));
const keyId = keyCheckOf(master);
/** Everything any component logged or printed, scanned for the key at the end. */
const logs: string[] = [];
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-memkey-'));
  dirs.push(dir);
  return dir;
}

let identity: ServerIdentity;
let identityFile: string;

t.before(async () => {
  const dir = await tempDir();
  identityFile = path.join(dir, 'memkey.id');
  identity = await generateIdentityFile(identityFile);
});

async function server(t: Test, opts: Partial<MemkeyServerOptions> & { socketPath?: string } = {}): Promise<MemkeyServer> {
  const dir = await tempDir();
  const s = await startMemkeyServer({
    identity: await loadIdentityFile(identityFile),
    keyIds: [keyId],
    listen: '127.0.0.1:0',
    socketPath: path.join(dir, 'run', 'memkey.sock'),
    log: (level, line) => logs.push(`${level} ${line}`),
    ...opts,
  });
  t.teardown(() => s.stop());
  return s;
}

function admin(t: Test, url: string, fingerprint = identity.fingerprint): AdminClient {
  const c = new AdminClient({ url, fingerprint });
  t.teardown(() => c.close());
  return c;
}

async function rejects(t: Test, p: Promise<unknown>, code: string, msg?: RegExp): Promise<Error> {
  try {
    await p;
    t.fail(`expected ${code}`);
    return new Error('resolved');
  } catch (err) {
    t.equal((err as MemkeyError | KeyError).code, code, `rejected with ${code}: ${(err as Error).message}`);
    if (msg) t.match((err as Error).message, msg);
    logs.push((err as Error).message);
    return err as Error;
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('identity file: 0600, reloads to the same fingerprint, never overwritten', async (t) => {
  t.equal((await stat(identityFile)).mode & 0o777, 0o600);
  t.equal((await loadIdentityFile(identityFile)).fingerprint, identity.fingerprint);
  await rejects(t, generateIdentityFile(identityFile), 'IDENTITY_FILE', /refusing to overwrite/);
});

t.test('a consumer gets the key only after delivery; socket is 0600', async (t) => {
  const s = await server(t);
  const st = await lstat(s.socketPath!);
  t.ok(st.isSocket(), 'a socket');
  t.equal(st.mode & 0o777, 0o600, 'mode 0600');

  const status: string[] = [];
  const source = new MemkeySource(`memkey:${s.socketPath}?timeout=30`, { onStatus: (l) => status.push(l) });
  t.equal(source.describe(), `memkey socket ${s.socketPath}`);
  let got: Uint8Array | undefined;
  const loading = source.load({}).then((k) => (got = k));
  await delay(300);
  t.equal(got, undefined, 'no key before delivery');
  t.equal(status.length, 1, 'one status line while waiting');
  t.match(status[0], identity.fingerprint, 'it names the fingerprint to deliver to');
  t.match(status[0], s.url, 'and where');
  logs.push(...status);

  const c = admin(t, s.url);
  t.equal((await c.status()).state, 'waiting');
  const r = await c.deliver(master);
  t.same(r, { keyId, alreadyHeld: false, fingerprint: identity.fingerprint });
  await loading;
  t.same(got, master, 'the consumer has the key');

  // Later consumers get it at once, without a status line.
  const later: string[] = [];
  t.same(await new MemkeySource(`memkey:${s.socketPath}`, { onStatus: (l) => later.push(l) }).load({}), master);
  t.same(later, []);
  const st2 = await c.status();
  t.equal(st2.state, 'ready');
  t.equal(st2.heldKeyId, keyId);
  t.equal((await c.deliver(master)).alreadyHeld, true, 're-delivery is idempotent');
});

t.test('wrong pinned fingerprint: aborts before sending anything', async (t) => {
  const s = await server(t);
  const wrong = randomBytes(32).toString('hex');
  await rejects(t, admin(t, s.url, wrong).deliver(master), 'IDENTITY_MISMATCH', new RegExp(`pinned fingerprint ${wrong}.*presented ${identity.fingerprint}.*nothing was sent`));
  const st = await admin(t, s.url).status();
  t.equal(st.state, 'waiting');
  t.equal(st.failures, 0, 'the server saw no delivery');
});

t.test('tampered challenge signature (man in the middle): aborts', async (t) => {
  const s = await server(t);
  let deliveries = 0;
  // A proxy that flips one bit of every challenge signature.
  const proxy = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      if (req.url === '/v1/deliver') deliveries++;
      const up = http.request(`${s.url}${req.url}`, { method: req.method, headers: { 'content-type': 'application/json' } }, (ur) => {
        const parts: Buffer[] = [];
        ur.on('data', (c: Buffer) => parts.push(c));
        ur.on('end', () => {
          let text = Buffer.concat(parts).toString();
          if (req.url === '/v1/challenge') {
            const m = JSON.parse(text) as { signature: string };
            const sig = fromB64u(m.signature);
            sig[10] ^= 1;
            m.signature = b64u(sig);
            text = JSON.stringify(m);
          }
          res.writeHead(ur.statusCode ?? 500, { 'content-type': 'application/json' }).end(text);
        });
      });
      up.end(Buffer.concat(body));
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => proxy.close(() => r())));
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  await rejects(t, admin(t, url).deliver(master), 'BAD_SIGNATURE', /does not verify.*nothing was sent/);
  t.equal(deliveries, 0, 'no delivery went out');
  t.equal((await admin(t, s.url).status()).state, 'waiting');
});

t.test('replayed delivery is refused', async (t) => {
  const s = await server(t);
  const c = admin(t, s.url);
  const { sealKey } = await import('../../src/memkey/protocol.js');
  const ch = await c.challenge();
  const { message } = sealKey(ch, master);
  t.equal(((await c.sendDelivery(message)) as { keyId: string }).keyId, keyId, 'first delivery accepted');
  await rejects(t, c.sendDelivery(message), 'CHALLENGE_UNKNOWN', /already used/);
  // A replay against a restarted server (new challenge book) fails the same way.
  await s.stop();
  const s2 = await server(t);
  await rejects(t, admin(t, s2.url).sendDelivery(message), 'CHALLENGE_UNKNOWN');
  t.equal((await admin(t, s2.url).status()).state, 'waiting', 'the restarted server does not take it');
});

t.test('expired challenge is refused', async (t) => {
  const s = await server(t, { challengeTtlMs: 150 });
  const c = admin(t, s.url);
  const { sealKey } = await import('../../src/memkey/protocol.js');
  const ch = await c.challenge();
  await delay(300);
  await rejects(t, c.sendDelivery(sealKey(ch, master).message), 'CHALLENGE_EXPIRED', /expired/);
  t.equal((await c.status()).state, 'waiting');
});

t.test('wrong key: the admin refuses to send it; the server refuses it if sent', async (t) => {
  const s = await server(t);
  const c = admin(t, s.url);
  const wrong = new Uint8Array(randomBytes(32));
  await rejects(t, c.deliver(wrong), 'KEY_MISMATCH', /nothing was sent/);
  t.equal((await c.status()).failures, 0, 'not counted: never sent');
  await rejects(t, c.deliver(wrong, { skipKeyCheck: true }), 'KEY_MISMATCH', new RegExp(`key-check mismatch.*accepts ${keyId}`));
  const st = await c.status();
  t.equal(st.state, 'waiting', 'the wrong key was not taken');
  t.equal(st.failures, 1, 'counted');
});

t.test('lockout after N failures, and its expiry', async (t) => {
  const s = await server(t, { maxFailures: 3, lockoutMs: 700 });
  const c = admin(t, s.url);
  const wrong = new Uint8Array(randomBytes(32));
  for (let i = 0; i < 3; i++) await rejects(t, c.deliver(wrong, { skipKeyCheck: true }), 'KEY_MISMATCH');
  const locked = await rejects(t, c.deliver(master), 'LOCKED', /locked after 3 failed attempts/);
  t.ok((locked as MemkeyError).retryAfterMs! > 0 && (locked as MemkeyError).retryAfterMs! <= 700, 'says when to retry');
  const st = await c.status();
  t.equal(st.state, 'locked');
  await delay(800);
  t.equal((await c.deliver(master)).keyId, keyId, 'the right key is accepted once the lock expires');
  t.ok(logs.some((l) => /deliveries locked for 1 s/.test(l)), 'the server logged the lockout');
});

t.test('consumers: unreachable server, timeout, remote URL refused', async (t) => {
  const dir = await tempDir();
  const missing = path.join(dir, 'none.sock');
  const e1 = await rejects(t, new MemkeySource(`memkey:${missing}`).load({}), 'KEY_SERVER_UNREACHABLE', /unreachable key server: .*none\.sock: no socket there; is s3cryptfs memkey-server running\?/);
  t.notMatch(e1.message, /\n/, 'one line');
  t.type(e1, KeyError);
  const s = await server(t);
  const lines: string[] = [];
  await rejects(t, new MemkeySource(`memkey:${s.socketPath}?timeout=0.3`, { onStatus: (l) => lines.push(l) }).load({}), 'KEY_WAIT_TIMEOUT', new RegExp(`within 300 ms.*fingerprint ${identity.fingerprint}`));
  t.equal(lines.length, 1);
  await rejects(t, new MemkeySource('memkey://keyhost:7000/k?token=abc').load({}), 'SOURCE_UNAVAILABLE', /only on a local Unix socket/);
  t.notMatch(new MemkeySource('memkey://user:secret@keyhost:7000/k?token=abc').describe(), /secret|token/);
});

t.test('watchKey: the key again after a memkey-server restart', async (t) => {
  const dir = await tempDir();
  const socketPath = path.join(dir, 'memkey.sock');
  const states: string[] = [];
  const keys: string[] = [];
  // Started before the server exists: it keeps trying.
  const w = watchKey(socketPath, {
    onKey: (k, info) => {
      keys.push(info.keyId);
      t.same(k, master);
      k.fill(0);
    },
    onState: (s) => states.push(s),
  }, { reconnectMinMs: 50, reconnectMaxMs: 200 });
  t.teardown(() => w.stop());
  let s = await startMemkeyServer({ identity, keyIds: [keyId], listen: '127.0.0.1:0', socketPath });
  await admin(t, s.url).deliver(master);
  t.same(await w.ready, { keyId, fingerprint: identity.fingerprint });
  t.equal(w.state, 'ready');
  await s.stop();
  s = await startMemkeyServer({ identity, keyIds: [keyId], listen: '127.0.0.1:0', socketPath });
  t.teardown(() => s.stop());
  for (let i = 0; i < 100 && w.state !== 'waiting'; i++) await delay(50);
  t.equal(w.state, 'waiting', 'reconnected to the restarted server, which waits for the key');
  await admin(t, s.url).deliver(master);
  for (let i = 0; i < 100 && keys.length < 2; i++) await delay(50);
  t.same(keys, [keyId, keyId], 'the key was received again');
  t.ok(states.includes('disconnected'));
  t.equal(w.state, 'ready');
});

t.test('embedded endpoint: waitForKey after a delivery, no socket', async (t) => {
  const emb = await startEmbeddedMemkey({ listen: '127.0.0.1:0', identityFile, keyIds: [keyId] });
  t.teardown(() => emb.stop());
  t.equal(emb.fingerprint, identity.fingerprint);
  let got: Uint8Array | undefined;
  const waiting = emb.waitForKey().then((k) => (got = k));
  await delay(100);
  t.equal(got, undefined);
  await admin(t, emb.url).deliver(master);
  await waiting;
  t.same(got, master);
  await emb.stop();
  await rejects(t, admin(t, emb.url).status(), 'UNREACHABLE', /unreachable key server/);
});

t.test('HTTPS admin endpoint: works with --ca, refuses an untrusted certificate', async (t) => {
  const dir = await tempDir();
  const { execFileSync } = await import('node:child_process');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const cert = await readFile(path.join(dir, 'cert.pem'));
  const s = await server(t, { tls: { cert, key: await readFile(path.join(dir, 'key.pem')) } });
  t.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  await rejects(t, admin(t, s.url).status(), 'UNREACHABLE', /not trusted.*--ca/);
  const c = new AdminClient({ url: s.url, fingerprint: identity.fingerprint, ca: cert });
  t.teardown(() => c.close());
  t.equal((await c.deliver(master)).keyId, keyId, 'delivered over TLS');
});

t.test('the key is in no file the system wrote, and in no log line', async (t) => {
  const needles = [
    Buffer.from(master),
    Buffer.from(Buffer.from(master).toString('hex')),
    Buffer.from(Buffer.from(master).toString('hex').toUpperCase()),
    Buffer.from(Buffer.from(master).toString('base64')),
    Buffer.from(Buffer.from(master).toString('base64url')),
  ];
  let files = 0;
  const scan = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await scan(p);
      else if (e.isFile()) {
        const data = await readFile(p);
        files++;
        for (const n of needles) t.notOk(data.includes(n), `${p} does not contain the key`);
      }
    }
  };
  for (const d of dirs) await scan(d);
  t.ok(files >= 1, `scanned ${files} file(s)`);
  const text = Buffer.from(logs.join('\n'));
  t.ok(logs.length > 10, `scanned ${logs.length} log lines and messages`);
  for (const n of needles) t.notOk(text.includes(n), 'no key in logs or error messages');
});

t.teardown(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
