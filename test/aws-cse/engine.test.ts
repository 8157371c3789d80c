// The engine with S3 Encryption Client objects (no SDK needed): V2 AES/GCM writes (single PUT and
// multipart), reads back whole/ranged/random, listing, copy/rename/delete with instruction files,
// V1 CBC and V3 objects built here, and tampering (tag, IV, wrapped key, metadata, commitment,
// truncation) failing cleanly with IntegrityError.
import { createCipheriv, createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import t from 'tap';
import { isCseIntegrityError, wrapAesEcb, wrapAesGcm } from '../../src/format/aws-cse/index.js';
import { IntegrityError } from '../../src/format/index.js';
import { setupEngine } from '../engine/fixtures/setup.js';

const MiB = 1024 * 1024;

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return null;
}

/** A V1 object as the V1 clients write it: AES-CBC content, data key wrapped with AES/ECB. */
function v1Object(master: Buffer, plain: Buffer) {
  const dk = randomBytes(32);
  const iv = randomBytes(16);
  const c = createCipheriv('aes-256-cbc', dk, iv);
  const body = Buffer.concat([c.update(plain), c.final()]);
  const envelope = { 'x-amz-key': wrapAesEcb(master, dk).toString('base64'), 'x-amz-iv': iv.toString('base64'), 'x-amz-matdesc': '{}' };
  return { body, envelope };
}

function hkdf512(ikm: Buffer, salt: Buffer, label: string, length: number): Buffer {
  const prk = createHmac('sha512', salt).update(ikm).digest();
  const info = Buffer.concat([Buffer.from([0x00, 0x73]), Buffer.from(label)]);
  return createHmac('sha512', prk).update(Buffer.concat([info, Buffer.from([1])])).digest().subarray(0, length);
}

function v3Object(master: Buffer, plain: Buffer) {
  const pdk = randomBytes(32);
  const messageId = randomBytes(28);
  const c = createCipheriv('aes-256-gcm', hkdf512(pdk, messageId, 'DERIVEKEY', 32), Buffer.alloc(12, 1));
  c.setAAD(Buffer.from([0x00, 0x73]));
  return {
    body: Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]),
    metadata: {
      'x-amz-c': '115', 'x-amz-w': '02', 'x-amz-3': wrapAesGcm(master, pdk, '115').toString('base64'),
      'x-amz-d': hkdf512(pdk, messageId, 'COMMITKEY', 28).toString('base64'), 'x-amz-i': messageId.toString('base64'),
    },
  };
}

t.test('V2 AES/GCM writes and reads, alongside native objects', async (t) => {
  const aesKey = randomBytes(32);
  const s = await setupEngine(t, { names: 'plain', partSize: 5 * MiB, awsCse: { aesKey, writeFormat: 'aws-cse-v2' } });
  const native = await s.reopen({ awsCse: { aesKey } });
  await native.putBuffer('native.bin', Buffer.from('native'));
  const sizes = [0, 1, 4097, 6 * MiB + 3];
  const data = new Map(sizes.map((n) => [n, randomBytes(n)]));
  for (const [n, d] of data) await s.engine.putBuffer(`gcm/${n}.bin`, d, { attributes: { mode: '644' } });

  const small = await s.store.head(s.bucket, `${s.prefix}/gcm/4097.bin`);
  t.match(small?.metadata, { 'x-amz-cek-alg': 'AES/GCM/NoPadding', 'x-amz-wrap-alg': 'AES/GCM', 'x-amz-tag-len': '128', 'x-amz-unencrypted-content-length': '4097' });
  t.equal(small?.size, 4097 + 16);
  const big = await s.store.head(s.bucket, `${s.prefix}/gcm/${6 * MiB + 3}.bin`);
  t.equal(big?.size, 6 * MiB + 3 + 16, 'multipart upload: GCM streamed across parts');
  t.equal(big?.metadata['x-amz-unencrypted-content-length'], undefined, 'length unknown when the multipart upload starts');
  t.equal(s.engine.stats.multipartUploads, 1);

  for (const [n, d] of data) {
    t.ok((await native.getBuffer(`gcm/${n}.bin`)).equals(d), `${n}: whole`);
    t.equal((await native.stat(`gcm/${n}.bin`))?.size, n);
    t.same((await native.stat(`gcm/${n}.bin`))?.attributes, { mode: '644' }, 'our attributes ride along');
    if (n > 2) {
      const got = await collect(native.readStream(`gcm/${n}.bin`, { start: 1, end: n - 1 }));
      t.ok(got.equals(d.subarray(1, n - 1)), `${n}: ranged`);
    }
  }
  const r = await native.openReader(`gcm/${6 * MiB + 3}.bin`);
  const d6 = data.get(6 * MiB + 3)!;
  for (const off of [0, MiB - 5, 3 * MiB + 17, 6 * MiB - 1]) t.ok((await r.read(off, 70_000)).equals(d6.subarray(off, off + 70_000)), `random read at ${off}`);
  r.close();
  t.ok((await s.engine.getBuffer('native.bin')).equals(Buffer.from('native')), 'a native object reads through an engine that writes S3EC');

  const page = await native.list('gcm');
  t.same(page.files.map((f) => [f.path, f.size]).sort(), sizes.map((n) => [`gcm/${n}.bin`, n]).sort());

  // copy / rename / setAttributes keep the envelope
  await native.rename('gcm/4097.bin', 'moved.bin');
  t.ok((await native.getBuffer('moved.bin')).equals(data.get(4097)!), 'renamed object still decrypts');
  await native.setAttributes('moved.bin', { mode: '600' });
  t.same((await native.stat('moved.bin'))?.attributes, { mode: '600' });
  t.ok((await native.getBuffer('moved.bin')).equals(data.get(4097)!), 'after setAttributes');
  t.equal(await native.stat('gcm/4097.bin'), null);
});

t.test('V1 CBC and V3 objects, instruction files, key material', async (t) => {
  const aesKey = randomBytes(32);
  const s = await setupEngine(t, { names: 'plain', awsCse: { aesKey } });
  const k = (p: string) => `${s.prefix}/${p}`;
  const plain = randomBytes(100_003);
  const v1 = v1Object(aesKey, plain);
  await s.store.put(s.bucket, k('v1.bin'), v1.body, { metadata: { ...v1.envelope } });
  await s.store.put(s.bucket, k('v1-instr.bin'), v1.body, { metadata: { 'x-amz-unencrypted-content-length': String(plain.length) } });
  await s.store.put(s.bucket, k('v1-instr.bin.instruction'), JSON.stringify(v1.envelope));
  const v3 = v3Object(aesKey, plain);
  await s.store.put(s.bucket, k('v3.bin'), v3.body, { metadata: v3.metadata });

  for (const p of ['v1.bin', 'v1-instr.bin', 'v3.bin']) {
    t.equal((await s.engine.stat(p))?.size, plain.length, `${p}: size (v1.bin has no recorded length: from the padding)`);
    t.ok((await s.engine.getBuffer(p)).equals(plain), `${p}: whole`);
    t.ok((await collect(s.engine.readStream(p, { start: 33, end: 70_001 }))).equals(plain.subarray(33, 70_001)), `${p}: ranged`);
    const reader = await s.engine.openReader(p);
    t.ok((await reader.read(99_990, 100)).equals(plain.subarray(99_990)), `${p}: random read at the end`);
    reader.close();
  }
  t.match(await s.engine.awsCseFacts('v3.bin'), { format: 'aws-cse-v3', wrapAlgorithm: 'AES/GCM', authenticated: true });
  t.match(await s.engine.awsCseFacts('v1-instr.bin'), { format: 'aws-cse-v1', envelope: 'instruction file', authenticated: false });
  const names = (await s.engine.list('')).files.map((f) => f.path).sort();
  t.same(names, ['v1-instr.bin', 'v1.bin', 'v3.bin'], 'instruction file hidden');

  // copy takes the instruction file along; delete removes it
  await s.engine.copy('v1-instr.bin', 'copy.bin');
  t.ok((await s.engine.getBuffer('copy.bin')).equals(plain));
  await s.engine.delete('v1-instr.bin');
  t.equal(await s.store.head(s.bucket, k('v1-instr.bin.instruction')), null, 'instruction file deleted with its object');
  t.ok(await s.store.head(s.bucket, k('copy.bin.instruction')));

  // key material
  const noKey = await s.reopen({ awsCse: { rsaKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey } });
  t.match(await failure(noKey.getBuffer('v3.bin')), { name: 'CseKeyMissingError', message: /--aws-cse-key-file/ });
  const wrongKey = await s.reopen({ awsCse: { aesKey: randomBytes(32) } });
  t.ok(isCseIntegrityError(await failure(wrongKey.getBuffer('v3.bin')), 'CSE_KEY_UNWRAP_FAILED'), 'wrong master key');
  t.ok(isCseIntegrityError(await failure(wrongKey.getBuffer('v1.bin')), 'CSE_KEY_UNWRAP_FAILED'));
  const none = await s.reopen({ awsCse: undefined });
  t.ok(await failure(none.getBuffer('v3.bin')) instanceof IntegrityError, 'without S3EC keys the object is not ours: integrity error, no crash');
});

t.test('tampered S3EC objects fail cleanly', async (t) => {
  const aesKey = randomBytes(32);
  const s = await setupEngine(t, { names: 'plain', awsCse: { aesKey, writeFormat: 'aws-cse-v2' } });
  const k = (p: string) => `${s.prefix}/${p}`;
  const plain = randomBytes(50_000);
  await s.engine.putBuffer('good.bin', plain);
  const info = (await s.store.head(s.bucket, k('good.bin')))!;
  const body = (await s.store.getObject(s.bucket, k('good.bin'))).body;
  const plant = async (name: string, b: Buffer, meta: Record<string, string>) => s.store.put(s.bucket, k(name), b, { metadata: meta });
  const flip = (b: Buffer, i: number) => {
    const c = Buffer.from(b);
    c[i < 0 ? c.length + i : i] ^= 1;
    return c;
  };
  const flip64 = (v: string, i: number) => flip(Buffer.from(v, 'base64'), i).toString('base64');

  const cases: [string, Buffer, Record<string, string>, string][] = [
    ['tag.bin', flip(body, -1), info.metadata, 'CSE_TAG_MISMATCH'],
    ['content.bin', flip(body, 1000), info.metadata, 'CSE_TAG_MISMATCH'],
    ['iv.bin', body, { ...info.metadata, 'x-amz-iv': flip64(info.metadata['x-amz-iv'], 0) }, 'CSE_TAG_MISMATCH'],
    ['key.bin', body, { ...info.metadata, 'x-amz-key-v2': flip64(info.metadata['x-amz-key-v2'], 20) }, 'CSE_KEY_UNWRAP_FAILED'],
    ['cekalg.bin', body, { ...info.metadata, 'x-amz-cek-alg': 'AES/CBC/PKCS5Padding', 'x-amz-tag-len': '' }, 'CSE_ENVELOPE_INVALID'],
    ['taglen.bin', body, { ...info.metadata, 'x-amz-tag-len': '96' }, 'CSE_UNSUPPORTED'],
    ['length.bin', body, { ...info.metadata, 'x-amz-unencrypted-content-length': '49999' }, 'CSE_INVALID_SIZE'],
    ['truncated.bin', body.subarray(0, body.length - 7), info.metadata, 'CSE_INVALID_SIZE'],
    ['matdesc.bin', body, { ...info.metadata, 'x-amz-matdesc': '{not json' }, 'CSE_ENVELOPE_INVALID'],
  ];
  for (const [name, b, meta, code] of cases) {
    await plant(name, b, Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== '')));
    const err = await failure(s.engine.getBuffer(name));
    t.ok(isCseIntegrityError(err, code as never), `${name}: ${code} (got ${String(err)})`);
    t.ok(err instanceof IntegrityError, `${name}: an IntegrityError (exit code 7)`);
  }
  // Sequential reads from the start (how FUSE reads a file) are authenticated at the end.
  const seq = randomBytes(3 * MiB + 5);
  await s.engine.putBuffer('seq.bin', seq);
  const seqInfo = (await s.store.head(s.bucket, k('seq.bin')))!;
  const readAll = async (name: string, order: number[]) => {
    const rd = await s.engine.openReader(name);
    const step = 128 * 1024;
    const parts = new Map<number, Buffer>();
    try {
      for (const i of order) parts.set(i, await rd.read(i * step, step));
      return { ok: Buffer.concat([...parts.entries()].sort(([a], [b]) => a - b).map(([, b]) => b)), rd };
    } catch (err) {
      return { err, rd };
    }
  };
  const steps = Array.from({ length: Math.ceil(seq.length / (128 * 1024)) }, (_, i) => i);
  const good = await readAll('seq.bin', steps);
  t.ok(good.ok?.equals(seq), 'sequential reads return the object');
  t.equal((good.rd as unknown as { authenticated: boolean }).authenticated, true, 'and checked its tag');
  const shuffled = await readAll('seq.bin', [...steps].reverse());
  t.ok(shuffled.ok?.equals(seq));
  t.equal((shuffled.rd as unknown as { authenticated: boolean }).authenticated, false, 'out-of-order reads are not authenticated');
  const seqBody = (await s.store.getObject(s.bucket, k('seq.bin'))).body;
  await plant('seq-bad.bin', flip(seqBody, -3), seqInfo.metadata);
  const bad = await readAll('seq-bad.bin', steps);
  t.ok(isCseIntegrityError(bad.err, 'CSE_TAG_MISMATCH'), 'the read reaching the end of a tampered object fails');
  t.ok(isCseIntegrityError(await failure(bad.rd.read(0, 10)), 'CSE_TAG_MISMATCH'), 'and so does every later read');

  // A whole-object random-access read authenticates too; a partial one cannot.
  const reader = await s.engine.openReader('tag.bin');
  t.ok(isCseIntegrityError(await failure(reader.read(0, 50_000)), 'CSE_TAG_MISMATCH'), 'whole read through the reader checks the tag');
  const again = await s.engine.openReader('tag.bin');
  t.ok(isCseIntegrityError(await failure(again.read(10, 100)), 'CSE_TAG_MISMATCH'), 'a partial read of a one-window object fetches it whole and checks the tag');
  again.close();
  reader.close();
  // The listing skips what it cannot size and says so.
  const warnings: string[] = [];
  const page = await s.engine.list('', { onWarning: (w) => warnings.push(w.key) });
  t.ok(page.files.some((f) => f.path === 'good.bin'));
  t.ok(warnings.some((w) => w.endsWith('length.bin')), 'inconsistent object reported, not listed');

  // CBC: a modified block breaks the padding deterministically when it is the second-to-last one.
  const v1 = v1Object(aesKey, randomBytes(1000));
  await plant('cbc.bin', flip(v1.body, v1.body.length - 17), v1.envelope);
  t.ok(isCseIntegrityError(await failure(s.engine.getBuffer('cbc.bin')), 'CSE_BAD_PADDING'));

  // V3: a modified commitment or message id is refused before decrypting.
  const v3 = v3Object(aesKey, randomBytes(1000));
  await plant('v3d.bin', v3.body, { ...v3.metadata, 'x-amz-d': flip64(v3.metadata['x-amz-d'], 3) });
  await plant('v3i.bin', v3.body, { ...v3.metadata, 'x-amz-i': flip64(v3.metadata['x-amz-i'], 3) });
  for (const name of ['v3d.bin', 'v3i.bin']) t.ok(isCseIntegrityError(await failure(s.engine.getBuffer(name)), 'CSE_COMMITMENT_MISMATCH'), name);
});
