// Interop of `s3cryptfs serve-s3` with a real kernel mount of the same store (issue #6): objects
// PUT through the gateway by the AWS CLI (single-part, multipart-sized, empty, nested, odd names)
// read byte-exact through the mount, files written in the mount GET byte-exact through the
// gateway, and an overwrite on either side is seen on the other. Both name modes (encrypted
// names: the gateway walks directories; plain names: it lists the backend directly). The mount
// runs with zero cache TTLs so each step sees the other side's latest write.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { CLI, mount, run, setupStore, sha256, sh } from './fixtures/mount.js';
import { missing, run as runTool, TOOLS } from '../gateway/fixtures/tools.js';

const AK = 'MOUNTGWKEY01';
const SK = 'mount-gw-secret-0123456789';
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let fuseSkip: string | false = false;
try {
  await readFile('/dev/fuse').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') throw err; });
} catch {
  fuseSkip = 'no /dev/fuse';
}
const skip = missing('aws') || fuseSkip;

for (const names of ['aes-siv', 'plain'] as const) {
  t.test(`gateway <-> mount, ${names} names`, { skip }, async (t) => {
    const store = await setupStore(t, { names });
    const B = store.bucket;
    // The gateway: the real CLI, as a child, on the same backend and key as the mount.
    const gwEnv = { ...process.env, ...store.env, S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: AK, S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: SK, S3CRYPTFS_GATEWAY_BUCKETS: B };
    const child = spawn(process.execPath, [CLI, 'serve-s3', '--http-listen', '127.0.0.1:0'], { env: gwEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b));
    child.stderr!.on('data', (b: Buffer) => (out += b));
    for (let i = 0; i < 1200 && !/S3 endpoint \(HTTP[^)]*\): http/.test(out) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    const endpoint = /S3 endpoint \(HTTP[^)]*\): (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    if (!endpoint) throw new Error(`serve-s3 did not start: ${out}`);

    const home = path.join(store.dir, 'home');
    await mkdir(home);
    const awsEnv = {
      PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, AWS_ACCESS_KEY_ID: AK, AWS_SECRET_ACCESS_KEY: SK, AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: path.join(home, 'aws-config'), AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'aws-credentials'), AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '',
    };
    const aws = async (...args: string[]) => {
      const r = await runTool(TOOLS.aws, ['--endpoint-url', endpoint, ...args], awsEnv, { cwd: store.dir, timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`aws ${args.join(' ')}: ${r.code} ${r.stderr.slice(-1000)}`);
      return r.stdout;
    };
    const m = await mount(t, store, ['--attr-ttl', '0', '--dir-ttl', '0', '--negative-ttl', '0']);
    const MARKER = `plaintext-marker-${randomBytes(6).toString('hex')}`;

    // Gateway -> mount.
    const viaGw = new Map<string, Buffer>([
      ['small.txt', Buffer.from(`${MARKER}\nhello through the gateway\n`)],
      ['empty', Buffer.alloc(0)],
      // s3rver (unlike S3) leaves out a common prefix "a/" when every key below it is two or more
      // levels deeper, so "a/" gets a file of its own for the mount's readdir to see it.
      ['a/top.txt', Buffer.from('top\n')],
      ['a/b/nested.bin', Buffer.concat([Buffer.from(MARKER), randomBytes(300_001)])],
      ['odd name: +plus & colon.bin', randomBytes(4097)],
      // Above the AWS CLI's 8 MiB threshold: a multipart upload through the gateway.
      ['big/multipart.bin', Buffer.concat([Buffer.from(MARKER), randomBytes(17 * MiB + 5)])],
    ]);
    for (const [key, data] of viaGw) {
      const file = path.join(store.dir, 'up.tmp');
      await writeFile(file, data);
      await aws('s3', 'cp', file, `s3://${B}/${key}`);
    }
    for (const [key, data] of viaGw) {
      const p = path.join(m.mnt, key);
      t.equal((await run(`stat -c %s ${JSON.stringify(p)}`)).trim(), String(data.length), `mount: size of ${key}`);
      t.equal(await sha256(p), sha(data), `mount reads ${key} byte-exact`);
    }
    const lsMount = await run(`cd ${JSON.stringify(m.mnt)} && find . -type f`);
    t.same(lsMount.split('\n').filter(Boolean).map((l) => l.slice(2)).sort(), [...viaGw.keys()].sort(), 'the mount lists exactly the gateway\'s objects');

    // Mount -> gateway.
    const viaMount = new Map<string, Buffer>([
      ['m/one.txt', Buffer.from(`${MARKER} written in the mount\n`)],
      ['m/deep/er/two.bin', randomBytes(1 * MiB + 3)],
      ['m/zero', Buffer.alloc(0)],
      ['m/large.bin', randomBytes(12 * MiB + 1)],
    ]);
    for (const [key, data] of viaMount) {
      const src = path.join(store.dir, 'in.tmp');
      await writeFile(src, data);
      await run(`mkdir -p ${JSON.stringify(path.dirname(path.join(m.mnt, key)))} && cp ${JSON.stringify(src)} ${JSON.stringify(path.join(m.mnt, key))}`);
    }
    const ls = await aws('s3', 'ls', '--recursive', `s3://${B}/m/`);
    for (const [key, data] of viaMount) {
      t.match(ls, new RegExp(`\\s${data.length} ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`), `gateway lists ${key} with its plaintext size`);
      const dst = path.join(store.dir, 'down.tmp');
      await aws('s3', 'cp', `s3://${B}/${key}`, dst);
      t.equal(sha(await readFile(dst)), sha(data), `gateway GET of ${key} written in the mount is byte-exact`);
    }
    const range = await aws('s3api', 'get-object', '--bucket', B, '--key', 'm/large.bin', '--range', 'bytes=5000000-5000099', path.join(store.dir, 'range.tmp'));
    t.match(range, /"ContentLength": 100/);
    t.ok((await readFile(path.join(store.dir, 'range.tmp'))).equals(viaMount.get('m/large.bin')!.subarray(5_000_000, 5_000_100)), 'ranged GET of a mount-written file');

    // Overwrites cross over too.
    const v2 = randomBytes(5000);
    await writeFile(path.join(store.dir, 'v2.tmp'), v2);
    await aws('s3', 'cp', path.join(store.dir, 'v2.tmp'), `s3://${B}/m/one.txt`);
    t.equal(await sha256(path.join(m.mnt, 'm/one.txt')), sha(v2), 'the mount sees the gateway\'s overwrite');
    const v3 = randomBytes(7000);
    await writeFile(path.join(store.dir, 'v3.tmp'), v3);
    await run(`cp ${JSON.stringify(path.join(store.dir, 'v3.tmp'))} ${JSON.stringify(path.join(m.mnt, 'small.txt'))}`);
    await aws('s3', 'cp', `s3://${B}/small.txt`, path.join(store.dir, 'v3.out'));
    t.ok((await readFile(path.join(store.dir, 'v3.out'))).equals(v3), 'the gateway sees the mount\'s overwrite');
    // Deletes as well.
    await aws('s3', 'rm', `s3://${B}/a/b/nested.bin`);
    t.not((await sh(`test -e ${JSON.stringify(path.join(m.mnt, 'a/b/nested.bin'))}`)).code, 0, 'deleted through the gateway: gone from the mount');

    const grep = await sh(`grep -rl ${MARKER} ${JSON.stringify(store.bucketDir)}`);
    t.equal(grep.stdout, '', 'the backend holds no plaintext');
  });
}
