// The AWS SDK for Ruby writes objects in every mode it supports (V1 AES and RSA, V2 AES/GCM,
// RSA-OAEP-SHA1 and kms+context, metadata and instruction-file envelopes, 0 B to multipart-sized);
// s3cryptfs reads them through the engine (whole, ranged, random access, listing) and the CLI.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Engine } from '../../src/engine/index.js';
import { createKms, loadAwsCseOptions } from '../../src/engine/aws-cse/index.js';
import { KeyFileSource, loadKeys } from '../../src/keys/index.js';
import { cliFixture } from '../cli/fixtures/cli.js';
import { startFakeKms } from './helpers/fake-kms.js';
import { makeKeyFiles, rubyMissing, rubySdk, type RubyItem } from './helpers/sdk.js';

const MiB = 1024 * 1024;
const MODES = ['v1-aes', 'v1-rsa', 'v1-aes-instr', 'v2-aes-gcm', 'v2-rsa', 'v2-kms', 'v2-aes-gcm-instr'];
const SIZES = [0, 1, 16, 1000, MiB + 7];
/** Larger than a multipart part (8 MiB); one CBC and one GCM mode. */
const BIG = { size: 9 * MiB + 5, modes: ['v1-aes', 'v2-aes-gcm'] };

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const rubySkip = (await rubyMissing()) ?? false;

t.test('Ruby SDK writes, s3cryptfs reads', { skip: rubySkip }, async (t) => {
  const f = await cliFixture(t);
  const kms = await startFakeKms();
  t.teardown(() => kms.stop());
  const keyFile = path.join(f.dir, 'master.key');
  t.equal((await f.cli(['keygen', '--out', keyFile])).code, 0);
  const init = await f.cli(['init', f.url(), '--no-encrypt-names', '--key-file', keyFile]);
  t.equal(init.code, 0, init.stderr);
  const kf = await makeKeyFiles(f.dir);

  // --- the Ruby SDK writes ---
  const expected = new Map<string, Buffer>();
  const items: RubyItem[] = [];
  const add = async (mode: string, size: number) => {
    const key = `ruby/${mode}/${size}.bin`;
    const data = randomBytes(size);
    const file = path.join(f.dir, `${mode}-${size}.in`);
    await writeFile(file, data);
    expected.set(key, data);
    items.push({ op: 'put', mode, key, file });
  };
  for (const mode of MODES) for (const size of SIZES) await add(mode, size);
  for (const mode of BIG.modes) await add(mode, BIG.size);
  const results = await rubySdk(f.dir, {
    endpoint: f.endpoint, kms_endpoint: kms.endpoint, bucket: f.bucket,
    aes_key_file: kf.aesKeyFile, rsa_key_file: kf.rsaKeyFile, kms_key_id: 'alias/s3cryptfs-test', items,
  });
  t.same(results.filter((r) => !r.ok), [], 'the Ruby SDK wrote every object');

  // --- engine ---
  const { keys } = await loadKeys(new KeyFileSource(keyFile));
  const awsCse = await loadAwsCseOptions({
    keyFile: kf.aesKeyFile, rsaKeyFile: kf.rsaKeyFile, kmsKeyId: 'alias/s3cryptfs-test',
    kms: createKms({ endpoint: kms.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
  });
  const engine = await Engine.open({ store: f.store, bucket: f.bucket, prefix: '', keys, awsCse });
  await engine.putBuffer('native.txt', Buffer.from('our own format, same store\n'));

  for (const [key, data] of expected) {
    const st = await engine.stat(key);
    t.equal(st?.size, data.length, `${key}: stat size`);
    t.ok((await engine.getBuffer(key)).equals(data), `${key}: whole read`);
    if (data.length > 0) {
      for (let i = 0; i < 3; i++) {
        const start = Math.floor(Math.random() * data.length);
        const end = Math.min(data.length, start + 1 + Math.floor(Math.random() * 70_000));
        const got = await collect(engine.readStream(key, { start, end }));
        if (!got.equals(data.subarray(start, end))) t.fail(`${key}: range [${start}, ${end}) differs`);
      }
      const reader = await engine.openReader(key);
      const mid = Math.floor(data.length / 3);
      t.ok((await reader.read(mid, 4097)).equals(data.subarray(mid, mid + 4097)), `${key}: random-access read`);
      t.ok((await reader.read(0, data.length + 10)).equals(data), `${key}: random-access whole read (authenticated)`);
      reader.close();
    }
  }
  t.ok((await engine.getBuffer('native.txt')).equals(Buffer.from('our own format, same store\n')), 'native object still reads');

  const listed = new Map<string, number>();
  for await (const page of engine.listAll('', { recursive: true })) for (const file of page.files) listed.set(file.path, file.size);
  t.same([...listed.keys()].filter((k) => k.endsWith('.instruction')), [], 'instruction files are hidden');
  for (const [key, data] of expected) t.equal(listed.get(key), data.length, `${key}: listed with its plaintext size`);
  t.equal(listed.get('native.txt'), 27);
  t.ok(kms.calls.Decrypt >= 1, 'the KMS object was opened through KMS');

  // --- CLI ---
  const cse = [
    '--key-file', keyFile, '--aws-cse-key-file', kf.aesKeyFile, '--aws-cse-rsa-key', kf.rsaKeyFile,
    '--aws-cse-kms-key-id', 'alias/s3cryptfs-test', '--aws-kms-endpoint', kms.endpoint,
  ];
  let r = await f.cli(['ls', '-l', f.url('ruby/v2-aes-gcm-instr/'), ...cse]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`\\s${MiB + 7}\\s.*1048583\\.bin`));
  t.notMatch(r.stdout, /instruction/);
  for (const key of ['ruby/v1-aes/1000.bin', 'ruby/v2-kms/1048583.bin', 'ruby/v1-aes-instr/16.bin', `ruby/v2-aes-gcm/${BIG.size}.bin`]) {
    r = await f.cli(['get', f.url(key), 'out.bin', ...cse]);
    t.equal(r.code, 0, `get ${key}: ${r.stderr}`);
    t.ok((await readFile(path.join(f.dir, 'out.bin'))).equals(expected.get(key)!), `cli get ${key}`);
  }
  r = await f.cli(['cat', f.url('ruby/v2-rsa/1000.bin'), f.url('native.txt'), ...cse]);
  t.ok(r.stdoutBuf.equals(Buffer.concat([expected.get('ruby/v2-rsa/1000.bin')!, Buffer.from('our own format, same store\n')])), 'cli cat of both formats');
  r = await f.cli(['stat', '--json', f.url('ruby/v2-aes-gcm-instr/1000.bin'), ...cse]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { format: 'aws-cse-v2', cipher: 'AES/GCM/NoPadding', wrapAlgorithm: 'AES/GCM', envelope: 'instruction file', size: 1000 });
  r = await f.cli(['stat', f.url('ruby/v1-rsa/16.bin'), ...cse]);
  t.match(r.stdout, /format:\s+aws-cse-v1/);
  t.match(r.stdout, /cipher:\s+AES\/CBC\/PKCS5Padding/);
  r = await f.cli(['stat', '--json', f.url('native.txt'), ...cse]);
  t.match(JSON.parse(r.stdout), { format: 's3cryptfs' });
  r = await f.cli(['verify', f.url(), ...cse]);
  t.equal(r.code, 0, `verify: ${r.stdout} ${r.stderr}`);
  t.match(r.stderr + r.stdout, new RegExp(`verified ${expected.size + 1} object`));
});
