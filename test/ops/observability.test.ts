/**
 * The mount's observability without FUSE: metrics on the admin listener change as expected after a
 * known workload; the control socket reports an upload in flight with its progress (also through
 * `s3cryptfs status`); log records carry no plaintext name; the dashboard (src/admin's page with
 * the mount's panels) renders in headless Chromium with values in it.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Engine } from '../../src/engine/index.js';
import { ciphertextSize, deriveKeys, IntegrityError, newBucketConfig } from '../../src/format/index.js';
import { fetchStatus, MOUNT_PANELS, startMountOps } from '../../src/ops/mount-ops.js';
import { withS3 } from '../helpers/s3server.js';
import { runCli, baseEnv } from '../cli/fixtures/cli.js';

const KiB = 1024;
const CHROMIUM = '/usr/bin/chromium';

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(s3cryptfs_(?:mount|backend)_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    if (m) values.set(m[1], Number(m[2]));
  }
  return values;
}

t.test('mount metrics, control socket, logs and dashboard', async (t) => {
  const s3 = await withS3(t);
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-ops-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keys = deriveKeys(randomBytes(32));
  await Engine.init(s3.store, s3.bucket, 'vault', newBucketConfig(keys, { chunkSize: 64 * KiB }));
  const engine = await Engine.open({ store: s3.store, bucket: s3.bucket, prefix: 'vault', keys, cacheBytes: 4 << 20 });
  const logged: { obj: object; msg: string }[] = [];
  const socket = path.join(dir, 'ctl', 'mnt.sock');
  const ops = await startMountOps({
    engine, store: s3.store, mountpoint: path.join(dir, 'mnt'), source: `s3://${s3.bucket}/vault/`,
    adminListen: '127.0.0.1:0', controlSocket: socket, cacheCapacity: 4 << 20,
    log: { warn: (obj, msg) => logged.push({ obj, msg }) },
  });
  t.teardown(() => ops.close());
  const admin = ops.adminAddress!;
  t.match(admin, /^http:\/\/127\.0\.0\.1:\d+$/, 'admin listener on loopback');

  // ---- metrics before and after a known workload ----------------------------------------------------
  const before = await scrape(admin);
  t.equal(before.get('s3cryptfs_mount_written_bytes_total'), 0, 'nothing written yet');
  t.equal(before.get('s3cryptfs_mount_uploads_in_flight'), 0);
  const secretName = 'quarterly-report-' + randomBytes(4).toString('hex');
  const a = randomBytes(100 * KiB);
  await engine.putBuffer(`${secretName}.pdf`, a);
  await engine.putBuffer('b.bin', randomBytes(200 * KiB));
  await engine.putBuffer('empty', Buffer.alloc(0));
  const reader = await engine.openReader(`${secretName}.pdf`);
  t.ok((await reader.read(0, 100 * KiB)).equals(a));
  t.ok((await reader.read(0, 100 * KiB)).equals(a), 'again: from the cache');
  reader.close();
  const after = await scrape(admin);
  t.equal(after.get('s3cryptfs_mount_written_bytes_total'), 300 * KiB, 'written = plaintext bytes put');
  t.equal(after.get('s3cryptfs_mount_uploads_total'), 3, 'three objects stored');
  t.ok((after.get('s3cryptfs_mount_uploaded_bytes_total') ?? 0) > 300 * KiB, 'uploaded ciphertext exceeds the plaintext (headers, tags)');
  t.equal(after.get('s3cryptfs_mount_read_bytes_total'), 100 * KiB, 'read = plaintext decrypted once (the second read hit the cache)');
  t.equal(after.get('s3cryptfs_mount_fetched_bytes_total'), ciphertextSize(100 * KiB, 64 * KiB), 'fetched = the ciphertext of the two chunks, once');
  t.equal(after.get('s3cryptfs_mount_cache_hits_total'), 2, 'the second read: two chunks from the cache');
  t.ok((after.get('s3cryptfs_mount_cache_bytes') ?? 0) >= 100 * KiB, 'cache occupancy');
  t.ok((after.get('s3cryptfs_mount_store_requests_total{operation="PutObject"}') ?? 0) >= 3, 'PutObject requests by operation');
  t.ok((after.get('s3cryptfs_backend_requests_total{operation="PutObject"}') ?? 0) >= 3, 'the same on the shared backend metrics (src/admin/store-metrics.ts)');
  t.equal(after.get('s3cryptfs_mount_integrity_failures_total'), 0);

  // ---- errors: counted, and logged without the plaintext name -----------------------------------------
  ops.recordError('read', `${secretName}.pdf`, new IntegrityError('CHUNK_TAMPERED', `chunk 0 of "${secretName}.pdf" failed authentication`, 0));
  ops.recordError('write', 'b.bin', Object.assign(new Error('EIO'), { code: 'EIO' }));
  const errs = await scrape(admin);
  t.equal(errs.get('s3cryptfs_mount_integrity_failures_total'), 1, 'integrity failure counted');
  t.equal(errs.get('s3cryptfs_mount_errors_total{op="read"}'), 1, 'errors by operation');
  t.equal(errs.get('s3cryptfs_mount_errors_total{op="write"}'), 1);
  const ready = await fetch(`${admin}/readyz`);
  t.equal(ready.status, 503, 'not ready after an integrity failure');
  t.equal(logged.length, 2, 'two log records');
  t.notMatch(JSON.stringify(logged), new RegExp(secretName), 'no plaintext name in the log records');
  t.match(JSON.stringify(logged[0]), /CHUNK_TAMPERED/, 'the code is logged');
  t.match(ops.logPath(`${secretName}.pdf`), /^s3:vault\//, 'names appear as their S3 key');
  const kernelSpelling = ops.logMessage(`/${secretName}.pdf`, `cannot read ${secretName}.pdf: gone`);
  t.notMatch(kernelSpelling, new RegExp(secretName), 'a message in the engine\'s spelling of a kernel path is redacted too');
  t.match(kernelSpelling, /^cannot read s3:vault\/\S+: gone$/);

  // ---- control socket: an upload in flight with its progress -----------------------------------------
  const writer = engine.createWriter('dir/upload-in-progress.bin');
  await writer.write(randomBytes(300 * KiB));
  let status = await fetchStatus(socket);
  t.equal(status.uploads.length, 1, 'one upload in flight');
  t.equal(status.uploads[0].path, 'dir/upload-in-progress.bin');
  t.equal(status.uploads[0].bytesWritten, 300 * KiB, 'with its progress');
  t.equal((await scrape(admin)).get('s3cryptfs_mount_uploads_in_flight'), 1, 'gauge follows');
  t.equal(status.errors.integrity, 1);
  t.equal(status.cache.capacity, 4 << 20);
  const env = { ...baseEnv(dir), S3CRYPTFS_FROM_SOURCE: '1' };
  const cli = await runCli(['status', '--socket', socket], { env });
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /uploads in flight: 1 file\(s\)/);
  t.match(cli.stdout, /dir\/upload-in-progress\.bin: 300 KiB so far/);
  t.match(cli.stdout, /errors: 2 \(1 integrity failure\(s\)\)/);
  t.match(cli.stdout, /metrics and dashboard: http:\/\/127\.0\.0\.1:\d+\//);
  await writer.close();
  status = await fetchStatus(socket);
  t.equal(status.uploads.length, 0, 'done: no upload in flight');
  const missing = await runCli(['status', path.join(dir, 'not-mounted')], { env });
  t.equal(missing.code, 8, 'status of something that is not a mount: not found');

  // ---- the dashboard in headless Chromium ------------------------------------------------------------
  // scripts/setup.sh --test installs Debian's chromium; without it this is a failure, not a skip.
  if (!existsSync(CHROMIUM)) {
    t.fail(`no ${CHROMIUM}: install Debian's chromium (scripts/setup.sh --test) to render the dashboard`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${admin}/`);
  // Two polls give rates; keep some traffic going in between.
  await engine.getBuffer('b.bin');
  await page.waitForFunction(() => document.querySelectorAll('.card .value').length > 0 && [...document.querySelectorAll('.card .value')].some((e) => /\d/.test(e.textContent ?? '')), undefined, { timeout: 15_000 });
  await page.waitForTimeout(2500);
  const titles = await page.$$eval('.card h2', (els) => els.map((e) => e.textContent));
  t.same(titles, MOUNT_PANELS.map((p) => p.title), 'one card per panel');
  const text = await page.textContent('body');
  t.match(text ?? '', /KiB|MiB/, 'byte values are shown');
  t.match(text ?? '', new RegExp(`s3://${s3.bucket}/vault/`), 'the source is shown');
  const shot = path.join(dir, 'dashboard.png');
  const png = await page.screenshot({ path: shot, fullPage: true });
  await writeFile(path.join(tmpdir(), 's3cryptfs-mount-dashboard.png'), png);
  t.ok(!isBlank(png), 'the screenshot is not blank');
});

/** Decodes the PNG's image data and tells whether (almost) every byte is the same. */
function isBlank(png: Buffer): boolean {
  let pos = 8;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString('ascii', pos + 4, pos + 8);
    if (type === 'IDAT') idat.push(png.subarray(pos + 8, pos + 8 + len));
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const counts = new Map<number, number>();
  for (let i = 0; i < raw.length; i += 7) counts.set(raw[i], (counts.get(raw[i]) ?? 0) + 1);
  const most = Math.max(...counts.values());
  return most / Math.ceil(raw.length / 7) > 0.995;
}
