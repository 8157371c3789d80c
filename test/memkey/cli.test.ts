// The real commands: `s3cryptfs memkey-admin` -> `s3cryptfs memkey-server` (child process,
// loopback + temp Unix socket) -> a consumer (MemkeySource.load) that gets the key only after
// delivery. Ends with a scan of everything the system wrote for the key.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { MemkeySource } from '../../src/keys/index.js';
import { keyCheckOf } from '../../src/memkey/index.js';
import { assertOneLineError, baseEnv, BIN, runCli, tempDir, type CliResult } from '../cli/fixtures/cli.js';

t.test('memkey-admin -> memkey-server -> consumer', async (t) => {
  const dir = await tempDir(t);
  const env = baseEnv(dir);
  const outputs: string[] = [];
  const cli = async (args: string[]): Promise<CliResult> => {
    const r = await runCli(args, { env, cwd: dir });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const master = randomBytes(32);
  const keyId = keyCheckOf(master);
  // The administrator's copy of the key: the one place it is meant to be on disk.
  const adminKeySource = path.join(dir, 'admin-master.key');
  await writeFile(adminKeySource, master.toString('hex') + '\n', { mode: 0o600 });
  const adminConfig = path.join(dir, 'admin.json');
  const identity = path.join(dir, 'server', 'memkey.id');
  const socket = path.join(dir, 'server', 'run', 'memkey.sock');
  await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(identity), { recursive: true }));

  // Identity: generated once, 0600, fingerprint printed.
  const gen = await cli(['memkey-server', '--identity', identity, '--generate-identity']);
  t.equal(gen.code, 0, gen.stderr);
  const fingerprint = /fingerprint ([0-9a-f]{64})/.exec(gen.stdout)?.[1] ?? '';
  t.match(fingerprint, /^[0-9a-f]{64}$/);
  t.equal((await stat(identity)).mode & 0o777, 0o600);

  // The server, in the background, logging to a file like a service would.
  const logFile = path.join(dir, 'server', 'memkey-server.log');
  let log = '';
  const child: ChildProcess = spawn(process.execPath, [BIN, 'memkey-server', '--identity', identity, '--listen', '127.0.0.1:0', '--socket', socket, '--key-id', keyId, '--max-failures', '2', '--lockout', '60'], {
    env,
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  for (let i = 0; i < 600 && !/waiting for the master key/.test(log); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /admin protocol on (http:\/\/\S+)/.exec(log)?.[1] ?? '';
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, `server started: ${log}`);
  t.match(log, `identity fingerprint ${fingerprint}`, 'the fingerprint is logged at start');
  const st = await lstat(socket);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o600, 'consumer socket is 0600');

  // init refuses a wrong fingerprint (it checks the server), then pins the right one.
  const wrong = randomBytes(32).toString('hex');
  assertOneLineError(t, await cli(['memkey-admin', 'init', '--server', url, '--fingerprint', wrong, '--admin-config', adminConfig]), 7, /server identity mismatch/);
  await t.rejects(stat(adminConfig), 'nothing saved');
  const init = await cli(['memkey-admin', 'init', '--server', url, '--fingerprint', fingerprint, '--admin-config', adminConfig]);
  t.equal(init.code, 0, init.stderr);
  t.equal((await stat(adminConfig)).mode & 0o777, 0o600, 'admin config is 0600');
  const admin = (...args: string[]) => cli(['memkey-admin', ...args, '--admin-config', adminConfig]);

  const imported = await admin('key', 'import', '--file', adminKeySource);
  t.equal(imported.code, 0, imported.stderr);
  t.match(imported.stdout, `key id ${keyId}`);
  const adminKeyStore = JSON.parse(await readFile(adminConfig, 'utf8')).keyFile as string;
  t.equal((await stat(adminKeyStore)).mode & 0o777, 0o600);

  // A consumer waits; nothing before the delivery.
  const status: string[] = [];
  let got: Uint8Array | undefined;
  const consumer = new MemkeySource(`memkey:${socket}?timeout=120`, { onStatus: (l) => status.push(l) }).load({}).then((k) => (got = k));
  const before = await admin('status');
  t.equal(before.code, 0, before.stderr);
  t.match(before.stdout, /state: +waiting/);
  t.match(before.stdout, /consumers: +1 connected/);
  t.equal(got, undefined, 'no key before delivery');
  t.match(status.join('\n'), fingerprint, 'the consumer said which fingerprint to deliver to');
  outputs.push(...status);

  const send = await admin('key', 'send');
  t.equal(send.code, 0, send.stderr);
  t.match(send.stdout, `delivered key id ${keyId}`);
  await consumer;
  t.same(got, new Uint8Array(master), 'the consumer got the key after delivery');
  const after = await admin('status');
  t.match(after.stdout, new RegExp(`state: +ready \\(key id ${keyId}\\)`));
  t.match(log, `master key accepted (key id ${keyId})`);

  // Errors: one line, non-zero.
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  assertOneLineError(t, await cli(['memkey-admin', 'status', '--server', `http://127.0.0.1:${closed}`, '--fingerprint', fingerprint]), 5, /unreachable key server/);
  assertOneLineError(t, await admin('key', 'send', '--fingerprint', wrong), 7, /identity mismatch.*nothing was sent/);
  assertOneLineError(t, await admin('key', 'frobnicate'), 2, /generate, import or send/);

  // SIGTERM: clean exit, socket removed.
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'server exits 0');
  await t.rejects(lstat(socket), 'socket removed');
  t.match(log, /key is wiped/);
  await writeFile(logFile, log, { mode: 0o600 });

  // Scan: the key in hex, base64 and raw bytes, in every file written (except the administrator's
  // key files, which hold it by design) and in every line any process printed.
  const needles = [master, Buffer.from(master.toString('hex')), Buffer.from(master.toString('hex').toUpperCase()), Buffer.from(master.toString('base64')), Buffer.from(master.toString('base64url'))];
  const excluded = new Set([adminKeySource, adminKeyStore]);
  const scanned: string[] = [];
  const scan = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await scan(p);
      else if (e.isFile() && !excluded.has(p)) {
        const data = await readFile(p);
        scanned.push(path.relative(dir, p));
        for (const n of needles) if (data.includes(n)) t.fail(`${p} contains the key`);
      }
    }
  };
  await scan(dir);
  t.ok(scanned.includes('admin.json') && scanned.includes(path.join('server', 'memkey.id')) && scanned.includes(path.join('server', 'memkey-server.log')), `scanned ${scanned.join(', ')}`);
  const printed = Buffer.from(outputs.join('\n') + log);
  for (const n of needles) t.notOk(printed.includes(n), 'no key in any output');
});
