// Upload bodies go out as UNSIGNED-PAYLOAD on loopback (and https) endpoints, signed with their
// SHA-256 when asked; s3rver verifies the signature either way and the bytes round-trip.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';

import { storeFor, withS3 } from '../helpers/s3server.js';

const { bucket, endpoint } = await withS3(t);

/** An HTTP forwarder to s3rver that records the x-amz-content-sha256 of every PUT. */
async function recordingForwarder(target: string): Promise<{ endpoint: string; puts: string[] }> {
  const u = new URL(target);
  const puts: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'PUT') puts.push(String(req.headers['x-amz-content-sha256']));
    const up = http.request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, puts };
}

t.test('loopback endpoint: UNSIGNED-PAYLOAD by default', async (t) => {
  const fwd = await recordingForwarder(endpoint);
  const store = storeFor({ endpoint: fwd.endpoint });
  t.teardown(() => store.destroy());
  const data = randomBytes(100_000);
  await store.put(bucket, 'unsigned.bin', data);
  t.same(fwd.puts, ['UNSIGNED-PAYLOAD']);
  t.ok((await store.getObject(bucket, 'unsigned.bin')).body.equals(data), 'stored intact');
});

t.test('unsignedPayload: false signs the body hash', async (t) => {
  const fwd = await recordingForwarder(endpoint);
  const store = storeFor({ endpoint: fwd.endpoint }, { unsignedPayload: false });
  t.teardown(() => store.destroy());
  const data = randomBytes(100_000);
  await store.put(bucket, 'signed.bin', data);
  t.same(fwd.puts, [createHash('sha256').update(data).digest('hex')]);
  t.ok((await store.getObject(bucket, 'signed.bin')).body.equals(data), 'stored intact');
});
