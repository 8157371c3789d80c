// The AWS CLI (Debian's awscli) against the gateway over a real s3rver: cp (single and multipart),
// ls, sync both ways, rm --recursive, s3api head/copy/delete-objects; interop with `s3cryptfs get`
// and `s3cryptfs put`; the backend holds only ciphertext.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { baseEnv, runCli } from '../cli/fixtures/cli.js';
import { clientEnv, gatewayFixture } from '../gateway/fixtures/gateway.js';
import { missing, run, TOOLS } from '../gateway/fixtures/tools.js';

const skip = missing('aws');
if (skip) {
  t.test('AWS CLI', { skip }, async () => {});
} else {
  const f = await gatewayFixture(t);
  const home = path.join(f.dir, 'home');
  await mkdir(home);
  const env = clientEnv(f, home);
  const aws = (...args: string[]) => run(TOOLS.aws, ['--endpoint-url', f.endpoint, ...args], env, { cwd: f.dir });
  const B = f.bucket;
  const ok = (t: Tap.Test, r: { code: number | null; stderr: string }, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr.slice(-500)}`);
  const MARKER = `plaintext-marker-${randomBytes(6).toString('hex')}`;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  t.test('ls, cp small and multipart-sized, downloads match', async (t) => {
    const r = await aws('s3', 'ls');
    ok(t, r, 's3 ls');
    t.match(r.stdout, new RegExp(`\\s${B}\\n`), 'the bucket is listed');
    const small = Buffer.concat([Buffer.from(MARKER), randomBytes(100_000)]);
    const big = Buffer.concat([Buffer.from(MARKER), randomBytes(20 * 1024 * 1024 + 123)]);
    await writeFile(path.join(f.dir, 'small.bin'), small);
    await writeFile(path.join(f.dir, 'big.bin'), big);
    ok(t, await aws('s3', 'cp', 'small.bin', `s3://${B}/dir/small.bin`, '--content-type', 'text/x-test', '--metadata', 'color=blue'), 'cp small');
    ok(t, await aws('s3', 'cp', 'big.bin', `s3://${B}/big.bin`), 'cp multipart');
    ok(t, await aws('s3', 'cp', `s3://${B}/dir/small.bin`, 'small.out'), 'cp small down');
    ok(t, await aws('s3', 'cp', `s3://${B}/big.bin`, 'big.out'), 'cp big down');
    t.equal(sha(await readFile(path.join(f.dir, 'small.out'))), sha(small));
    t.equal(sha(await readFile(path.join(f.dir, 'big.out'))), sha(big));
    const ls = await aws('s3', 'ls', '--recursive', `s3://${B}`);
    t.match(ls.stdout, new RegExp(`\\s${big.length} big\\.bin`), 'plaintext size listed');
    t.match(ls.stdout, new RegExp(`\\s${small.length} dir/small\\.bin`));
    const head = await aws('s3api', 'head-object', '--bucket', B, '--key', 'dir/small.bin');
    ok(t, head, 'head-object');
    const h = JSON.parse(head.stdout) as { ContentLength: number; ContentType: string; ETag: string; Metadata: Record<string, string> };
    t.equal(h.ContentLength, small.length);
    t.equal(h.ContentType, 'text/x-test');
    t.same(h.Metadata, { color: 'blue' });
    t.equal(h.ETag, `"${createHash('md5').update(small).digest('hex')}"`, 'single-part ETag is the MD5');
    const bh = JSON.parse((await aws('s3api', 'head-object', '--bucket', B, '--key', 'big.bin')).stdout) as { ETag: string };
    t.match(bh.ETag, /^"[0-9a-f]{32}-3"$/, 'multipart ETag has the part count');
  });

  t.test('sync both ways, then rm --recursive', async (t) => {
    const src = path.join(f.dir, 'src');
    await mkdir(path.join(src, 'a', 'b'), { recursive: true });
    const files: Record<string, Buffer> = {
      'a/one.txt': Buffer.from('one\n'),
      'a/b/two words+plus:colon.bin': randomBytes(3000),
      'empty': Buffer.alloc(0),
      'a/b/c.bin': randomBytes(70_000),
    };
    // S3 times have whole seconds: files from the same second as their upload would look newer.
    const past = new Date(Date.now() - 60_000);
    for (const [p, b] of Object.entries(files)) {
      await writeFile(path.join(src, p), b);
      await utimes(path.join(src, p), past, past);
    }
    ok(t, await aws('s3', 'sync', src, `s3://${B}/sync/`), 'sync up');
    const again = await aws('s3', 'sync', src, `s3://${B}/sync/`);
    ok(t, again, 'sync up again');
    t.notMatch(again.stdout, /upload:/, 'nothing to upload the second time');
    const dst = path.join(f.dir, 'dst');
    ok(t, await aws('s3', 'sync', `s3://${B}/sync/`, dst), 'sync down');
    for (const [p, b] of Object.entries(files)) t.equal(sha(await readFile(path.join(dst, p))), sha(b), p);
    const rm = await aws('s3', 'rm', '--recursive', `s3://${B}/sync/`);
    ok(t, rm, 'rm --recursive');
    t.equal((rm.stdout.match(/delete:/g) ?? []).length, 4);
    const ls = await aws('s3', 'ls', '--recursive', `s3://${B}/sync/`);
    t.equal(ls.stdout.trim(), '', 'nothing left');
  });

  t.test('s3api copy-object and delete-objects', async (t) => {
    let r = await aws('s3api', 'copy-object', '--bucket', B, '--key', 'copied.bin', '--copy-source', `${B}/dir/small.bin`);
    ok(t, r, 'copy-object');
    r = await aws('s3api', 'copy-object', '--bucket', B, '--key', 'copied2.bin', '--copy-source', `/${B}/dir/small.bin`, '--metadata-directive', 'REPLACE', '--content-type', 'application/x-new', '--metadata', 'k=v');
    ok(t, r, 'copy-object REPLACE');
    const h = JSON.parse((await aws('s3api', 'head-object', '--bucket', B, '--key', 'copied2.bin')).stdout) as { ContentType: string; Metadata: Record<string, string> };
    t.equal(h.ContentType, 'application/x-new');
    t.same(h.Metadata, { k: 'v' });
    const h1 = JSON.parse((await aws('s3api', 'head-object', '--bucket', B, '--key', 'copied.bin')).stdout) as { ContentType: string; Metadata: Record<string, string> };
    t.equal(h1.ContentType, 'text/x-test', 'COPY keeps the content type');
    t.same(h1.Metadata, { color: 'blue' });
    ok(t, await aws('s3', 'cp', `s3://${B}/copied.bin`, 'copied.out'), 'download the copy');
    t.same(await readFile(path.join(f.dir, 'copied.out')), await readFile(path.join(f.dir, 'small.bin')));
    r = await aws('s3api', 'delete-objects', '--bucket', B, '--delete', 'Objects=[{Key=copied.bin},{Key=copied2.bin},{Key=never-existed}]');
    ok(t, r, 'delete-objects');
    const d = JSON.parse(r.stdout) as { Deleted: { Key: string }[] };
    t.same(d.Deleted.map((x) => x.Key).sort(), ['copied.bin', 'copied2.bin', 'never-existed']);
    r = await aws('s3api', 'head-object', '--bucket', B, '--key', 'copied.bin');
    t.not(r.code, 0);
    t.match(r.stderr, /404|Not Found/);
  });

  t.test('interop with the s3cryptfs CLI (same store, same names)', async (t) => {
    const cliEnv = {
      ...baseEnv(home), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: f.s3.endpoint, S3CRYPTFS_KEY_FILE: f.keyFile,
    };
    let r = await runCli(['get', `s3://${B}/big.bin`, path.join(f.dir, 'cli-big.out')], { env: cliEnv, cwd: f.dir });
    t.equal(r.code, 0, r.stderr);
    t.equal(sha(await readFile(path.join(f.dir, 'cli-big.out'))), sha(await readFile(path.join(f.dir, 'big.bin'))), 'the CLI reads what the gateway wrote');
    const fromCli = randomBytes(200_000);
    await writeFile(path.join(f.dir, 'from-cli.bin'), fromCli);
    r = await runCli(['put', path.join(f.dir, 'from-cli.bin'), `s3://${B}/from/cli.bin`], { env: cliEnv, cwd: f.dir });
    t.equal(r.code, 0, r.stderr);
    const down = await aws('s3', 'cp', `s3://${B}/from/cli.bin`, 'from-cli.out');
    ok(t, down, 'the gateway reads what the CLI wrote');
    t.same(await readFile(path.join(f.dir, 'from-cli.out')), fromCli);
    const h = JSON.parse((await aws('s3api', 'head-object', '--bucket', B, '--key', 'from/cli.bin')).stdout) as { ETag: string; ContentLength: number };
    t.equal(h.ContentLength, fromCli.length);
    t.match(h.ETag, /^"[0-9a-f]{32}-1"$/, 'objects written elsewhere get a derived (non-MD5) ETag');
    const ls = await aws('s3api', 'list-objects-v2', '--bucket', B, '--prefix', 'from/');
    t.equal((JSON.parse(ls.stdout) as { Contents: { ETag: string }[] }).Contents[0].ETag, h.ETag, 'listing and HEAD agree');
  });

  t.test('the backend bucket holds no plaintext', async (t) => {
    let scanned = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if ((await stat(p)).size > 0) {
          scanned++;
          t.notOk((await readFile(p)).includes(MARKER), `${p} has no plaintext`);
        }
      }
    };
    await walk(f.s3.dir);
    t.ok(scanned > 0, `scanned ${scanned} backend files`);
  });
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Tap {
    type Test = import('tap').Test;
  }
}
