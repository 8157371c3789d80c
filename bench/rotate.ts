/**
 * Key rotation traffic (npm run bench:rotate): rotates one 2 GiB object (by default) to a new master
 * key against a local s3rver, with UploadPartCopy emulated by a loopback proxy (the server-side copy
 * happens between the proxy and s3rver, as it would inside S3), and reports the bytes the rotation
 * sent and received according to the store's own counters. Fails (exit 1) when that traffic is 1% of
 * the object's size or more.
 *
 *   npm run bench:rotate [-- --size 2G] [--copy-part 512M]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine/index.js';
import { deriveKeys, newBucketConfig } from '../src/format/index.js';
import { rotateKeys } from '../src/ops/rotate.js';
import { startEmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';
import { startS3Proxy } from '../test/helpers/s3-proxy.js';

const MiB = 1024 * 1024;

function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text);
  if (!m) throw new Error(`bad size ${text}`);
  return Number(m[1]) * ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2].toUpperCase() as ''] ?? 1);
}

function fmt(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(2)} MiB` : `${n} B`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '2G' }, 'copy-part': { type: 'string', default: '512M' } } });
  const size = parseSize(values.size!);
  const copyPartSize = parseSize(values['copy-part']!);
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-rotate-'));
  const s3 = await startEmbeddedS3({ dir, buckets: ['bench'] });
  const proxy = await startS3Proxy(s3.endpoint, { emulateUploadPartCopy: true });
  const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const direct = new ObjectStore({ endpoint: s3.endpoint, region: 'us-east-1', credentials });
  const store = new ObjectStore({ endpoint: proxy.endpoint, region: 'us-east-1', credentials });
  try {
    const oldKeys = deriveKeys(randomBytes(32));
    const newKeys = deriveKeys(randomBytes(32));
    await Engine.init(direct, 'bench', 'vault', newBucketConfig(oldKeys));
    const writer = (await Engine.open({ store: direct, bucket: 'bench', prefix: 'vault', keys: oldKeys, partSize: 64 * MiB })).createWriter('big.bin');
    const block = randomBytes(16 * MiB);
    let t0 = Date.now();
    for (let done = 0; done < size; done += block.length) await writer.write(block.subarray(0, Math.min(block.length, size - done)));
    const { size: stored } = await writer.close();
    console.log(`wrote a ${fmt(size)} object (${fmt(stored)} stored) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    t0 = Date.now();
    const result = await rotateKeys({ store, bucket: 'bench', prefix: 'vault/', oldKeys: [oldKeys], newKeys, copyPartSize });
    const elapsed = (Date.now() - t0) / 1000;
    if (!result.finished || result.rebuilt !== 1) throw new Error(`rotation did not complete as expected: ${JSON.stringify(result)}`);
    const { bytesSent, bytesReceived, requests } = store.stats;
    const traffic = bytesSent + bytesReceived;
    const ratio = traffic / stored;

    // The rotated object reads under the new key alone: first and last chunks against the data written.
    const engine = await Engine.open({ store: direct, bucket: 'bench', prefix: 'vault', keys: newKeys });
    const reader = await engine.openReader('big.bin');
    const head = await reader.read(0, MiB);
    const tailAt = size - MiB;
    const tail = await reader.read(tailAt, MiB);
    reader.close();
    const expect = (at: number) => block.subarray(at % block.length, (at % block.length) + MiB);
    if (!head.equals(expect(0)) || !tail.equals(expect(tailAt))) throw new Error('rotated object does not read back');

    console.log(`rotated it in ${elapsed.toFixed(1)} s (rebuilt: 1 uploaded part + ${Math.ceil((stored - 5 * MiB) / copyPartSize)} server-side copies of ${fmt(copyPartSize)})`);
    console.log(`traffic: sent ${fmt(bytesSent)}, received ${fmt(bytesReceived)}, total ${fmt(traffic)} = ${(ratio * 100).toFixed(3)}% of the object (limit 1%)`);
    console.log(`requests: ${Object.entries(requests).map(([op, n]) => `${op} ${n}`).join(', ')}`);
    if (ratio >= 0.01) {
      console.error('FAIL: rotation traffic is 1% of the object or more');
      process.exitCode = 1;
    }
  } finally {
    store.destroy();
    direct.destroy();
    await proxy.stop();
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
