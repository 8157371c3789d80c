// The kernel mount with AWS S3 Encryption Client objects: objects the Ruby SDK wrote show up with
// their plaintext sizes and contents (instruction files hidden), next to native files; with
// --format aws-cse-v2 files written through the mount become V2 AES/GCM objects.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { storeFor } from '../helpers/s3server.js';
import { mount, run, setupStore, sh } from '../e2e/fixtures/mount.js';
import { makeKeyFiles, rubyMissing, rubySdk } from './helpers/sdk.js';

const rubySkip = (await rubyMissing()) ?? false;
let fuseSkip: string | false = false;
try {
  await readFile('/dev/fuse').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') throw err; });
} catch {
  fuseSkip = 'no /dev/fuse';
}

t.test('mount lists and reads S3EC objects; --format aws-cse-v2 writes them', { skip: rubySkip || fuseSkip }, async (t) => {
  const store = await setupStore(t, { names: 'plain' });
  const kf = await makeKeyFiles(store.dir);
  const files = new Map<string, Buffer>();
  const items = [];
  for (const [mode, size] of [['v2-aes-gcm', 300_001], ['v1-aes-instr', 5000], ['v2-rsa', 17], ['v2-aes-gcm-instr', 0]] as const) {
    const data = randomBytes(size);
    const file = path.join(store.dir, `${mode}.in`);
    await writeFile(file, data);
    files.set(`${mode}.bin`, data);
    items.push({ op: 'put' as const, mode, key: `sdk/${mode}.bin`, file });
  }
  const res = await rubySdk(store.dir, { endpoint: store.server.endpoint, bucket: store.bucket, aes_key_file: kf.aesKeyFile, rsa_key_file: kf.rsaKeyFile, items });
  t.same(res.filter((r) => !r.ok), []);

  // A copy of one with its tag modified: reading it through the mount must fail (EIO).
  const s3 = storeFor(store.server);
  t.teardown(() => s3.destroy());
  const orig = await s3.getObject(store.bucket, 'sdk/v2-aes-gcm.bin');
  const bad = Buffer.from(orig.body);
  bad[bad.length - 1] ^= 1;
  await s3.put(store.bucket, 'sdk/tampered.bin', bad, { metadata: orig.info.metadata });

  const flags = ['--aws-cse-key-file', kf.aesKeyFile, '--aws-cse-rsa-key', kf.rsaKeyFile, '--format', 'aws-cse-v2'];
  const m = await mount(t, store, flags);
  const ls = await run(`ls -la ${JSON.stringify(path.join(m.mnt, 'sdk'))}`);
  t.notMatch(ls, /instruction/, 'instruction files hidden');
  for (const [name, data] of files) {
    const p = path.join(m.mnt, 'sdk', name);
    t.equal((await run(`stat -c %s ${JSON.stringify(p)}`)).trim(), String(data.length), `${name}: size`);
    const got = await run(`sha256sum ${JSON.stringify(p)}`);
    t.equal(got.split(' ')[0], createHash('sha256').update(data).digest('hex'), `${name}: content`);
  }
  // Partial reads (dd at an offset) go through ranged, unauthenticated decryption.
  const part = await run(`dd if=${JSON.stringify(path.join(m.mnt, 'sdk', 'v2-aes-gcm.bin'))} bs=1000 skip=100 count=3 status=none | sha256sum`);
  t.equal(part.split(' ')[0], createHash('sha256').update(files.get('v2-aes-gcm.bin')!.subarray(100_000, 103_000)).digest('hex'), 'ranged read through the mount');

  const cat = await sh(`cat ${JSON.stringify(path.join(m.mnt, 'sdk', 'tampered.bin'))} > /dev/null`);
  t.not(cat.code, 0, 'a tampered S3EC object cannot be read through the mount');
  t.match(cat.stderr, /Input\/output error/);

  // Written through the mount: stored as a V2 AES/GCM object.
  const mine = randomBytes(123_457);
  await writeFile(path.join(store.dir, 'mine.in'), mine);
  await run(`cp ${JSON.stringify(path.join(store.dir, 'mine.in'))} ${JSON.stringify(path.join(m.mnt, 'mine.bin'))}`);
  const head = await s3.head(store.bucket, 'mine.bin');
  t.match(head?.metadata, { 'x-amz-cek-alg': 'AES/GCM/NoPadding', 'x-amz-wrap-alg': 'RSA-OAEP-SHA1' }, 'RSA key given: RSA-OAEP-SHA1 wrap');
  t.equal(head?.size, mine.length + 16);
  t.ok((await readFile(path.join(m.mnt, 'mine.bin'))).equals(mine), 'reads back through the mount');
  await run(`mv ${JSON.stringify(path.join(m.mnt, 'mine.bin'))} ${JSON.stringify(path.join(m.mnt, 'moved.bin'))}`);
  t.ok((await readFile(path.join(m.mnt, 'moved.bin'))).equals(mine), 'renamed S3EC object still reads');
});
