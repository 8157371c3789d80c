/**
 * The operations commands through the real CLI against s3rver: verify (scrub) finds a planted
 * corrupt object and exits 7 with a report naming its key; gc aborts a planted stale multipart
 * upload and keeps a young one; rotate-key (dry run, then for real) and its exit codes.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Engine } from '../../src/engine/index.js';
import { deriveKeys, headerKeyId, HEADER_SIZE } from '../../src/format/index.js';
import { storeFor } from '../helpers/s3server.js';
import { cliFixture } from '../cli/fixtures/cli.js';
import { startUploadsProxy, uploadsDir } from './fixtures/uploads-proxy.js';

t.test('verify, gc and rotate-key from the command line', async (t) => {
  const f = await cliFixture(t);
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  await writeFile(path.join(f.dir, 'old.key'), oldKey.toString('hex') + '\n', { mode: 0o600 });
  await writeFile(path.join(f.dir, 'new.key'), newKey.toString('hex') + '\n', { mode: 0o600 });
  const withOld = { env: { S3CRYPTFS_KEY_FILE: path.join(f.dir, 'old.key') } };
  const withNew = { env: { S3CRYPTFS_KEY_FILE: path.join(f.dir, 'new.key') } };

  let r = await f.cli(['init', f.url('v'), '--chunk-size', '4K'], withOld);
  t.equal(r.code, 0, `init: ${r.stderr}`);
  const engine = await Engine.open({ store: f.store, bucket: f.bucket, prefix: 'v', keys: deriveKeys(oldKey) });
  for (let i = 0; i < 6; i++) await engine.putBuffer(`data/f${i}`, randomBytes(5000 + i));

  // ---- verify: clean, then with a planted corrupt object ---------------------------------------
  r = await f.cli(['verify', f.url('v')], withOld);
  t.equal(r.code, 0, `clean store verifies: ${r.stderr}`);
  t.match(r.stdout, /verified 6 object\(s\).*0 failed/);

  const listed = (await f.store.list(f.bucket, { prefix: 'v/' })).objects.filter((o) => !o.key.endsWith('.s3cryptfs.json'));
  const victim = listed[2].key;
  const body = (await f.store.getObject(f.bucket, victim)).body;
  body[HEADER_SIZE + 100] ^= 0x20; // a bit in the first chunk's ciphertext
  await f.store.put(f.bucket, victim, body);

  const report = path.join(f.dir, 'report.json');
  r = await f.cli(['verify', '--concurrency', '3', '--report', report, f.url('v')], withOld);
  t.equal(r.code, 7, 'a corrupt object: exit 7');
  t.match(r.stdout, new RegExp(`FAILED data/f\\d: integrity check failed: .* \\(CHUNK_TAMPERED; s3://${f.bucket}/${victim.replace(/[-/]/g, '\\$&')}\\)`), 'the failure names the path, the code and the object key');
  t.match(r.stdout, /verified 5 object\(s\).*1 failed/);
  const json = JSON.parse(await readFile(report, 'utf8')) as { listed: number; ok: number; failures: { key: string; code: string; path: string }[] };
  t.equal(json.listed, 6);
  t.equal(json.ok, 5);
  t.same(json.failures.map((x) => [x.key, x.code]), [[victim, 'CHUNK_TAMPERED']], 'report lists exactly the planted failure');
  t.match(json.failures[0].path, /^data\/f\d$/, 'with its plaintext path');

  r = await f.cli(['verify', '--sample', '2', f.url('v')], withOld);
  t.match(r.stdout, /verified \d object\(s\) \(a random sample of 2 of 6\)/, 'sample of 2');
  r = await f.cli(['verify', '--sample', '0', f.url('v')], withOld);
  t.equal(r.code, 2, '--sample 0 is a usage error');
  r = await f.cli(['verify', f.url('v/nothing-here/')], withOld);
  t.equal(r.code, 0, 'an empty directory verifies');

  // Repair the object for the rest of the test.
  body[HEADER_SIZE + 100] ^= 0x20;
  await f.store.put(f.bucket, victim, body);

  // ---- gc: one stale upload, one young ----------------------------------------------------------
  const stale = await f.store.createMultipart(f.bucket, 'v/crashed-writer');
  await f.store.uploadPart(f.bucket, 'v/crashed-writer', stale, 1, randomBytes(1000));
  const young = await f.store.createMultipart(f.bucket, 'v/running-writer');
  const twoDaysAgo = new Date(Date.now() - 2 * 86400_000);
  await utimes(path.join(uploadsDir(f.server.dir, f.bucket), stale, 'key'), twoDaysAgo, twoDaysAgo);
  const proxy = await startUploadsProxy(f.server.endpoint, f.server.dir);
  t.teardown(() => proxy.stop());
  const viaProxy = { env: { AWS_ENDPOINT_URL: proxy.endpoint } };
  const proxied = storeFor(proxy);
  t.teardown(() => proxied.destroy());
  t.equal((await proxied.listMultipartUploads(f.bucket)).length, 2, 'two uploads in progress');

  r = await f.cli(['gc', '--dry-run', f.url('v')], viaProxy);
  t.equal(r.code, 0, `gc --dry-run: ${r.stderr}`);
  t.match(r.stdout, new RegExp(`would abort s3://${f.bucket}/v/crashed-writer upload ${stale}`));
  t.equal((await proxied.listMultipartUploads(f.bucket)).length, 2, 'dry run aborts nothing');
  r = await f.cli(['gc', '--older-than', '1d', f.url('v')], viaProxy);
  t.equal(r.code, 0, `gc: ${r.stderr}`);
  t.match(r.stdout, /aborted .*crashed-writer.*\(started .*, 2d ago\)/);
  t.match(r.stdout, /reclaimed 1 of 2 multipart upload\(s\) .* older than 1d; 1 younger kept/);
  t.same((await proxied.listMultipartUploads(f.bucket)).map((u) => u.uploadId), [young], 'only the young upload is left');
  r = await f.cli(['gc', '--older-than', 'soon', f.url('v')], viaProxy);
  t.equal(r.code, 2, 'a bad duration is a usage error');
  await f.store.abortMultipart(f.bucket, 'v/running-writer', young);

  // ---- rotate-key ---------------------------------------------------------------------------------
  r = await f.cli(['rotate-key', f.url('v'), '--dry-run', '--new-key-file', path.join(f.dir, 'new.key')], withOld);
  t.equal(r.code, 0, `dry run: ${r.stderr}`);
  t.match(r.stdout, /dry run: 6 of 6 object\(s\) .* would move to key/);
  await writeFile(path.join(f.dir, 'other.key'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  r = await f.cli(['rotate-key', f.url('v'), '--new-key-file', path.join(f.dir, 'new.key')], { env: { S3CRYPTFS_KEY_FILE: path.join(f.dir, 'other.key') } });
  t.equal(r.code, 3, 'a current key the store does not list: wrong key');
  r = await f.cli(['rotate-key', f.url('v')], withOld);
  t.equal(r.code, 2, 'no new key: usage error');
  r = await f.cli(['rotate-key', f.url('v'), '--new-key-file', path.join(f.dir, 'old.key')], withOld);
  t.equal(r.code, 2, 'the same key: usage error');
  r = await f.cli(['rotate-key', f.url('v'), '--new-key-file', path.join(f.dir, 'new.key')], withOld);
  t.equal(r.code, 0, `rotate: ${r.stderr}`);
  t.match(r.stdout, /rotated 6 of 6 object\(s\)/);
  t.match(r.stdout, /rotation complete/);
  for (const o of listed) {
    t.ok(headerKeyId(await f.store.getRange(f.bucket, o.key, 0, HEADER_SIZE)).equals(deriveKeys(newKey).keyId), `${o.key} is under the new key`);
  }
  r = await f.cli(['verify', f.url('v')], withNew);
  t.equal(r.code, 0, `everything verifies under the new key: ${r.stderr}`);
  t.match(r.stdout, /verified 6 object\(s\)/);
  r = await f.cli(['verify', f.url('v')], withOld);
  t.equal(r.code, 3, 'the old key is refused');
  r = await f.cli(['cat', f.url('v/data/f0')], withNew);
  t.equal(r.stdoutBuf.length, 5000, 'names unchanged: cat by the old name works');
});
