// serve-s3 with the AWS S3 Encryption Client format (issue #7): objects the Ruby SDK wrote are
// listed with plaintext sizes and read byte-exact through the gateway (whole and ranged; a
// tampered one is a 500, never wrong bytes); with --format aws-cse-v2 a PUT through the gateway
// stores a V2 AES/GCM object, checked by decrypting it here with node:crypto (RSA-OAEP-SHA1 wrap)
// and by the Go SDK's DecryptionClientV2 (kms+context wrap).
import { constants, createDecipheriv, createHash, createPrivateKey, privateDecrypt, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createKms, loadAwsCseOptions } from '../../src/engine/aws-cse/index.js';
import { startFakeKms } from '../aws-cse/helpers/fake-kms.js';
import { goTool, makeKeyFiles, rubyMissing, rubySdk, run } from '../aws-cse/helpers/sdk.js';
import { ACCESS_KEY, clientEnv, gatewayFixture, SECRET_KEY } from './fixtures/gateway.js';
import { missing, run as runTool, TOOLS } from './fixtures/tools.js';
import { s3request, type SignedRequest } from './fixtures/signed.js';

const MiB = 1024 * 1024;
const creds = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rubySkip = (await rubyMissing()) ?? false;
const go = await goTool();
const goSkip = 'missing' in go ? go.missing : false;

t.test('objects written by the Ruby SDK read through the gateway; --format aws-cse-v2 PUTs are V2 objects', { skip: rubySkip }, async (t) => {
  const keyDir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-gwcse-'));
  t.teardown(() => rm(keyDir, { recursive: true, force: true }));
  const kf = await makeKeyFiles(keyDir);
  const awsCse = await loadAwsCseOptions({ keyFile: kf.aesKeyFile, rsaKeyFile: kf.rsaKeyFile, format: 'aws-cse-v2' });
  const f = await gatewayFixture(t, { awsCse });
  const B = f.bucket;
  const req = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>) => s3request(f.endpoint, { ...creds, ...r });

  const files = new Map<string, Buffer>();
  const items = [];
  for (const [mode, size] of [['v2-aes-gcm', 300_001], ['v1-aes-instr', 5000], ['v2-rsa', 17], ['v2-aes-gcm-instr', 0], ['v1-aes', 9 * MiB + 5]] as const) {
    const data = randomBytes(size);
    const file = path.join(f.dir, `${mode}.in`);
    await writeFile(file, data);
    files.set(`sdk/${mode}.bin`, data);
    items.push({ op: 'put' as const, mode, key: `sdk/${mode}.bin`, file });
  }
  const res = await rubySdk(f.dir, { endpoint: f.s3.endpoint, bucket: B, aes_key_file: kf.aesKeyFile, rsa_key_file: kf.rsaKeyFile, items });
  t.same(res.filter((r) => !r.ok), [], 'the Ruby SDK wrote every object');
  // A copy of the GCM one with a flipped tag bit.
  const orig = await f.store.getObject(B, 'sdk/v2-aes-gcm.bin');
  const bad = Buffer.from(orig.body);
  bad[bad.length - 1] ^= 1;
  await f.store.put(B, 'sdk/tampered.bin', bad, { metadata: orig.info.metadata });

  const list = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'sdk/' } });
  t.equal(list.status, 200, list.text);
  t.notMatch(list.text, /\.instruction/, 'instruction files are not listed');
  for (const [key, data] of files) {
    t.match(list.text, `<Key>${key}</Key>`, `${key} listed`);
    const size = new RegExp(`<Key>${key}</Key>.*?<Size>(\\d+)</Size>`).exec(list.text)?.[1];
    t.equal(Number(size), data.length, `${key}: plaintext size in the listing`);
    const head = await req({ method: 'HEAD', path: `/${B}/${key}` });
    t.equal(head.status, 200);
    t.equal(head.headers['content-length'], String(data.length), `${key}: HEAD size`);
    const get = await req({ method: 'GET', path: `/${B}/${key}` });
    t.equal(get.status, 200);
    t.equal(sha(get.body), sha(data), `${key}: GET bytes exact`);
  }
  const gcm = files.get('sdk/v2-aes-gcm.bin')!;
  let r = await req({ method: 'GET', path: `/${B}/sdk/v2-aes-gcm.bin`, headers: { range: 'bytes=100000-103999' } });
  t.equal(r.status, 206);
  t.ok(r.body.equals(gcm.subarray(100_000, 104_000)), 'ranged GET of an SDK-written GCM object');
  const big = files.get('sdk/v1-aes.bin')!;
  r = await req({ method: 'GET', path: `/${B}/sdk/v1-aes.bin`, headers: { range: `bytes=${big.length - 40}-` } });
  t.equal(r.status, 206);
  t.ok(r.body.equals(big.subarray(big.length - 40)), 'ranged GET of the tail of a multipart-sized CBC object');

  r = await req({ method: 'GET', path: `/${B}/sdk/tampered.bin` });
  t.equal(r.status, 500, 'tampered SDK object: 500');
  t.notOk(r.body.includes(gcm.subarray(0, 64)), 'no plaintext of the tampered object is sent');

  // --format aws-cse-v2 with the RSA key given: RSA-OAEP-SHA1 wrap. Decrypted here independently.
  const mine = randomBytes(70_001);
  r = await req({ method: 'PUT', path: `/${B}/mine/one.bin`, body: mine, headers: { 'content-length': String(mine.length) } });
  t.equal(r.status, 200, r.text);
  const stored = await f.store.getObject(B, 'mine/one.bin');
  const md = stored.info.metadata;
  t.match(md, { 'x-amz-cek-alg': 'AES/GCM/NoPadding', 'x-amz-wrap-alg': 'RSA-OAEP-SHA1', 'x-amz-tag-len': '128' }, 'V2 envelope in the metadata');
  t.equal(stored.body.length, mine.length + 16, 'GCM ciphertext + tag');
  const wrapped = privateDecrypt({ key: createPrivateKey(await readFile(kf.rsaKeyFile)), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(md['x-amz-key-v2'], 'base64'));
  const dk = wrapped.subarray(1, 1 + wrapped[0]);
  t.equal(wrapped.subarray(1 + wrapped[0]).toString(), 'AES/GCM/NoPadding', 'the wrap binds the content algorithm');
  const d = createDecipheriv('aes-256-gcm', dk, Buffer.from(md['x-amz-iv'], 'base64'));
  d.setAuthTag(stored.body.subarray(stored.body.length - 16));
  const plain = Buffer.concat([d.update(stored.body.subarray(0, stored.body.length - 16)), d.final()]);
  t.ok(plain.equals(mine), 'the backend object decrypts to what was PUT');
  t.notOk(stored.body.includes(mine.subarray(0, 32)), 'no plaintext in the backend');
  r = await req({ method: 'GET', path: `/${B}/mine/one.bin` });
  t.ok(r.body.equals(mine), 'and reads back through the gateway');
  // Conditional create goes through its own engine (forwarded If-None-Match): same format.
  r = await req({ method: 'PUT', path: `/${B}/mine/cond.bin`, body: mine, headers: { 'content-length': String(mine.length), 'if-none-match': '*' } });
  t.equal(r.status, 200, r.text);
  t.equal((await f.store.head(B, 'mine/cond.bin'))?.metadata['x-amz-wrap-alg'], 'RSA-OAEP-SHA1', 'If-None-Match: * PUT is a V2 object too');
  r = await req({ method: 'PUT', path: `/${B}/mine/cond.bin`, body: mine, headers: { 'content-length': String(mine.length), 'if-none-match': '*' } });
  t.equal(r.status, 412, 'second create-only PUT refused');
});

t.test('--format aws-cse-v2 with KMS: the Go SDK reads what was PUT through the gateway', { skip: goSkip }, async (t) => {
  const kms = await startFakeKms();
  t.teardown(() => kms.stop());
  const kmsKeyId = 'arn:aws:kms:us-east-1:111122223333:key/s3cryptfs-gw-test';
  const awsCse = await loadAwsCseOptions({
    kmsKeyId, format: 'aws-cse-v2',
    kms: createKms({ endpoint: kms.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
  });
  const f = await gatewayFixture(t, { awsCse });
  const B = f.bucket;
  const bin = (go as { bin: string }).bin;
  // 11 MiB: larger than the engine's 8 MiB part, so the backend object is a multipart upload.
  for (const size of [1, 11 * MiB + 3]) {
    const data = randomBytes(size);
    const key = `gw/${size}.bin`;
    const r = await s3request(f.endpoint, { ...creds, method: 'PUT', path: `/${B}/${key}`, body: data, headers: { 'content-length': String(size) } });
    t.equal(r.status, 200, r.text);
    t.equal((await f.store.head(B, key))?.metadata['x-amz-wrap-alg'], 'kms+context');
    const out = path.join(f.dir, `go-${size}.out`);
    const g = await run(bin, ['get', f.s3.endpoint, kms.endpoint, B, key, out]);
    t.equal(g.code, 0, `Go reads ${key}: ${g.stderr}`);
    if (g.code === 0) t.equal(sha(await readFile(out)), sha(data), `Go decrypts the ${size} bytes PUT through the gateway`);
  }
  // The AWS CLI's multipart upload (9 MiB > its 8 MiB threshold): parts staged, then re-encrypted on complete.
  if (!missing('aws')) {
    const home = path.join(f.dir, 'home');
    await mkdir(home);
    const mp = randomBytes(9 * MiB + 7);
    await writeFile(path.join(f.dir, 'mp.in'), mp);
    const cp = await runTool(TOOLS.aws, ['--endpoint-url', f.endpoint, 's3', 'cp', path.join(f.dir, 'mp.in'), `s3://${B}/gw/multipart.bin`], clientEnv(f, home));
    t.equal(cp.code, 0, `aws s3 cp (multipart): ${cp.stderr.slice(-500)}`);
    t.equal((await f.store.head(B, 'gw/multipart.bin'))?.metadata['x-amz-wrap-alg'], 'kms+context', 'a completed multipart upload is a V2 object');
    const g = await run(bin, ['get', f.s3.endpoint, kms.endpoint, B, 'gw/multipart.bin', path.join(f.dir, 'mp.out')]);
    t.equal(g.code, 0, g.stderr);
    if (g.code === 0) t.equal(sha(await readFile(path.join(f.dir, 'mp.out'))), sha(mp), 'Go decrypts the multipart upload made through the gateway');
  }
  // And the reverse: Go writes, the gateway serves it.
  const data = randomBytes(2 * MiB + 1);
  await writeFile(path.join(f.dir, 'go.in'), data);
  const g = await run(bin, ['put', f.s3.endpoint, kms.endpoint, B, 'go/obj.bin', kmsKeyId, path.join(f.dir, 'go.in')]);
  t.equal(g.code, 0, g.stderr);
  const r = await s3request(f.endpoint, { ...creds, method: 'GET', path: `/${B}/go/obj.bin` });
  t.equal(r.status, 200);
  t.equal(sha(r.body), sha(data), 'the gateway serves a Go-written kms+context object byte-exact');
});
