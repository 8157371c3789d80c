// s3cryptfs writes V2 AES/GCM objects (kms+context) and the AWS SDK for Go's s3crypto
// DecryptionClientV2 reads them; the Go EncryptionClientV2 writes and s3cryptfs reads. KMS is
// a local stand-in (helpers/fake-kms.ts) that both sides reach through their real KMS clients.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Engine } from '../../src/engine/index.js';
import { createKms, loadAwsCseOptions } from '../../src/engine/aws-cse/index.js';
import { KeyFileSource, loadKeys } from '../../src/keys/index.js';
import { cliFixture } from '../cli/fixtures/cli.js';
import { startFakeKms } from './helpers/fake-kms.js';
import { goTool, run } from './helpers/sdk.js';

const MiB = 1024 * 1024;
const tool = await goTool();
const goSkip = 'missing' in tool ? tool.missing : false;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('s3cryptfs and the Go SDK read each other\'s kms+context objects', { skip: goSkip }, async (t) => {
  const bin = (tool as { bin: string }).bin;
  const f = await cliFixture(t);
  const kms = await startFakeKms();
  t.teardown(() => kms.stop());
  const keyFile = path.join(f.dir, 'master.key');
  t.equal((await f.cli(['keygen', '--out', keyFile])).code, 0);
  t.equal((await f.cli(['init', f.url(), '--no-encrypt-names', '--key-file', keyFile])).code, 0);
  const { keys } = await loadKeys(new KeyFileSource(keyFile));
  const kmsKeyId = 'arn:aws:kms:us-east-1:111122223333:key/s3cryptfs-test';
  const awsCse = await loadAwsCseOptions({
    kmsKeyId, format: 'aws-cse-v2',
    kms: createKms({ endpoint: kms.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
  });
  // 5 MiB parts: the 11 MiB object is a 3-part upload, GCM streamed across the parts.
  const engine = await Engine.open({ store: f.store, bucket: f.bucket, prefix: '', keys, awsCse, partSize: 5 * MiB });

  // s3cryptfs -> Go
  for (const size of [0, 1, 4096 + 3, 11 * MiB + 9]) {
    const data = randomBytes(size);
    const key = `ours/${size}.bin`;
    const w = engine.createWriter(key);
    for (let pos = 0; pos < size || (size === 0 && pos === 0); pos += 3 * MiB) {
      await w.write(data.subarray(pos, pos + 3 * MiB));
      if (size === 0) break;
    }
    await w.close();
    const head = await f.store.head(f.bucket, key);
    t.equal(head?.metadata['x-amz-wrap-alg'], 'kms+context');
    const out = path.join(f.dir, `go-${size}.out`);
    const r = await run(bin, ['get', f.endpoint, kms.endpoint, f.bucket, key, out]);
    t.equal(r.code, 0, `Go reads ${key}: ${r.stderr}`);
    if (r.code === 0) t.equal(sha(await readFile(out)), sha(data), `Go decrypts ${size} bytes written by s3cryptfs`);
  }

  // s3cryptfs CLI put --format aws-cse-v2 -> Go
  const cliData = randomBytes(70_000);
  await writeFile(path.join(f.dir, 'cli.in'), cliData);
  const put = await f.cli(['put', 'cli.in', f.url('cli/put.bin'), '--key-file', keyFile, '--format', 'aws-cse-v2',
    '--aws-cse-kms-key-id', kmsKeyId, '--aws-kms-endpoint', kms.endpoint]);
  t.equal(put.code, 0, put.stderr);
  let r = await run(bin, ['get', f.endpoint, kms.endpoint, f.bucket, 'cli/put.bin', path.join(f.dir, 'cli.out')]);
  t.equal(r.code, 0, r.stderr);
  t.ok((await readFile(path.join(f.dir, 'cli.out'))).equals(cliData), 'Go reads what `s3cryptfs put --format aws-cse-v2` wrote');

  // Go -> s3cryptfs
  for (const size of [0, 17, 2 * MiB + 1]) {
    const data = randomBytes(size);
    const file = path.join(f.dir, `go-in-${size}`);
    await writeFile(file, data);
    const key = `go/${size}.bin`;
    r = await run(bin, ['put', f.endpoint, kms.endpoint, f.bucket, key, kmsKeyId, file]);
    t.equal(r.code, 0, `Go writes ${key}: ${r.stderr}`);
    t.equal((await engine.stat(key))?.size, size);
    t.ok((await engine.getBuffer(key)).equals(data), `s3cryptfs reads ${size} bytes written by Go`);
    if (size > 100) {
      const reader = await engine.openReader(key);
      t.ok((await reader.read(size - 50, 100)).equals(data.subarray(size - 50)), 'ranged read of a Go object');
      reader.close();
    }
  }
});
