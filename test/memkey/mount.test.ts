// A real kernel mount whose key comes from memkey: `s3cryptfs mount --key-file memkey:SOCK` (and
// the embedded `--memkey-listen`) becomes readable only after an administrator's delivery.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { decodeKey } from '../../src/keys/index.js';
import { AdminClient, generateIdentityFile, keyCheckOf, startMemkeyServer } from '../../src/memkey/index.js';
import { CLI, isMounted, run, setupStore, sh } from '../e2e/fixtures/mount.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const store = await setupStore(t);
const master = decodeKey(await readFile(store.keyFile, 'utf8'), 'test key');
const keyId = keyCheckOf(master);
const q = JSON.stringify;
const env: NodeJS.ProcessEnv = { ...process.env, ...store.env, S3CRYPTFS_KEY_FILE: undefined };
const content = `hello from memkey ${Date.now()}\n`;
await writeFile(path.join(store.dir, 'hello.txt'), content);
await run(`node ${q(CLI)} put ${q(path.join(store.dir, 'hello.txt'))} s3://${store.bucket}/hello.txt`, { env: store.env });
const identityFile = path.join(store.dir, 'memkey.id');
const identity = await generateIdentityFile(identityFile);
const outputs: string[] = [];

interface Mount {
  mnt: string;
  output(): string;
  waitFor(re: RegExp): Promise<RegExpExecArray>;
}

async function startMount(t: Test, name: string, keyArgs: string[]): Promise<Mount> {
  const mnt = path.join(store.dir, name);
  await mkdir(mnt, { recursive: true });
  const child: ChildProcess = spawn(process.execPath, [CLI, 'mount', `s3://${store.bucket}`, mnt, ...keyArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    outputs.push(out);
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    if (await isMounted(mnt)) await sh(`fusermount -uz ${q(mnt)}`);
  });
  return {
    mnt,
    output: () => out,
    async waitFor(re) {
      for (let i = 0; i < 1200; i++) {
        const m = re.exec(out);
        if (m) return m;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${re} from the mount (exit ${child.exitCode}):\n${out}`);
    },
  };
}

t.test('mount --key-file memkey:SOCK is readable only after delivery', async (t) => {
  const socketPath = path.join(store.dir, 'run', 'memkey.sock');
  const server = await startMemkeyServer({ identity, keyIds: [keyId], listen: '127.0.0.1:0', socketPath });
  t.teardown(() => server.stop());
  const m = await startMount(t, 'mnt', ['--key-file', `memkey:${socketPath}`]);
  const waiting = await m.waitFor(/waiting for the master key.*fingerprint ([0-9a-f]{64})/);
  t.equal(waiting[1], identity.fingerprint, 'the status line names the fingerprint');
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(await isMounted(m.mnt), 'not mounted before delivery');
  t.notOk(m.output().includes('mounted '), 'not ready');
  t.same(await readdir(m.mnt), [], 'nothing readable');

  const admin = new AdminClient({ url: server.url, fingerprint: identity.fingerprint });
  t.teardown(() => admin.close());
  t.equal((await admin.deliver(master)).keyId, keyId);
  await m.waitFor(/mounted /);
  t.ok(await isMounted(m.mnt));
  t.equal(await run(`cat ${q(path.join(m.mnt, 'hello.txt'))}`), content, 'readable after delivery');
});

t.test('mount --memkey-listen: the embedded endpoint', async (t) => {
  const m = await startMount(t, 'mnt2', ['--memkey-listen', '127.0.0.1:0', '--memkey-identity', identityFile]);
  const waiting = await m.waitFor(/waiting for the master key: .* to (http:\/\/127\.0\.0\.1:\d+), fingerprint ([0-9a-f]{64})/);
  t.equal(waiting[2], identity.fingerprint);
  t.notOk(await isMounted(m.mnt), 'not mounted before delivery');
  const admin = new AdminClient({ url: waiting[1], fingerprint: identity.fingerprint });
  t.teardown(() => admin.close());
  await admin.deliver(master);
  await m.waitFor(/mounted /);
  t.equal(await run(`cat ${q(path.join(m.mnt, 'hello.txt'))}`), content);
  await t.rejects(admin.status(), { code: 'UNREACHABLE' }, 'the endpoint is closed once the key is in');
});

t.test('unreachable key server: one line, exit 12', async (t) => {
  const r = await sh(`node ${q(CLI)} ls s3://${store.bucket}/ --key-file memkey:${q(path.join(store.dir, 'nope.sock'))}`, { env });
  t.equal(r.code, 12, r.stderr);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.match(r.stderr, /^s3cryptfs: unreachable key server: .*nope\.sock: no socket there/);
  outputs.push(r.stdout, r.stderr);
});

t.test('the key is not in the bucket data, the mount dirs or any output', async (t) => {
  const hex = Buffer.from(master).toString('hex');
  const needles = [Buffer.from(master), Buffer.from(hex), Buffer.from(hex.toUpperCase()), Buffer.from(Buffer.from(master).toString('base64')), Buffer.from(Buffer.from(master).toString('base64url'))];
  const files = (await run(`find ${q(store.server.dir)} ${q(store.dir)} -type f -not -path '*/mnt*'`)).split('\n').filter((f) => f && f !== store.keyFile);
  t.ok(files.length > 3, `${files.length} files`);
  for (const f of files) {
    const data = await readFile(f);
    for (const n of needles) if (data.includes(n)) t.fail(`${f} contains the key`);
  }
  const printed = Buffer.from(outputs.join('\n'));
  for (const n of needles) t.notOk(printed.includes(n), 'not in any output');
});
