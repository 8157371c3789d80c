// Ranged GETs reuse pooled connections: a body read to its end must not destroy the socket.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import t from 'tap';

import { storeFor, withS3 } from '../helpers/s3server.js';

const { store, bucket, endpoint } = await withS3(t);

/** A TCP forwarder to s3rver that counts the connections clients open through it. */
async function countingForwarder(target: string): Promise<{ endpoint: string; connections: () => number }> {
  const u = new URL(target);
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(Number(u.port), u.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

t.test('sequential ranged GETs share one keep-alive connection', async (t) => {
  const data = randomBytes(1024 * 1024);
  await store.put(bucket, 'ka.bin', data);
  const fwd = await countingForwarder(endpoint);
  const viaProxy = storeFor({ endpoint: fwd.endpoint });
  t.teardown(() => viaProxy.destroy());
  for (let i = 0; i < 20; i++) {
    const start = (i * 37_000) % (data.length - 131_072);
    const got = await viaProxy.getRange(bucket, 'ka.bin', start, start + 131_072);
    t.ok(got.equals(data.subarray(start, start + 131_072)), `range ${i} exact`);
  }
  t.equal(fwd.connections(), 1, '20 ranged GETs one after another used a single connection');
  const whole = await viaProxy.getObject(bucket, 'ka.bin');
  t.ok(whole.body.equals(data), 'whole-object GET exact');
  t.equal(fwd.connections(), 1, 'and so did the whole-object GET');
});
