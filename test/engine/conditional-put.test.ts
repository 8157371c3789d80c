// Backends without conditional writes: OpenStack Swift's s3api answers If-None-Match: * with 501
// (checked by hand against Swift 2.30); `init` and mkdir-if-missing then fall back to HEAD + PUT.
// The proxy plays Swift's part in front of s3rver (which ignores the header).
import { randomBytes } from 'node:crypto';
import t from 'tap';

import { Engine } from '../../src/engine/index.js';
import { deriveKeys } from '../../src/format/index.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';
import { storeFor, withS3 } from '../helpers/s3server.js';
import { bucketConfig } from './fixtures/setup.js';

t.test('a 501 to If-None-Match: * falls back to HEAD + PUT for init and directory markers', async (t) => {
  const s3 = await withS3(t);
  let refused = 0;
  const proxy = await startS3Proxy(s3.endpoint, {
    decide: (req) => {
      if (req.method === 'PUT' && req.headers['if-none-match'] === '*') {
        refused++;
        return { kind: 'error', status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented.' };
      }
      return { kind: 'forward' };
    },
  });
  t.teardown(() => proxy.stop());
  const store = storeFor(proxy);
  t.teardown(() => store.destroy());
  const keys = deriveKeys(randomBytes(32));
  const config = bucketConfig(keys);

  await Engine.init(store, s3.bucket, 'p', config);
  t.ok(refused >= 1, 'the conditional PUT was tried first');
  await t.rejects(Engine.init(store, s3.bucket, 'p', bucketConfig(deriveKeys(randomBytes(32)))), { code: 'ALREADY_INITIALIZED' }, 'a second init is refused');

  const engine = await Engine.open({ store, bucket: s3.bucket, prefix: 'p', keys });
  await engine.mkdirMarker('d', { attributes: { mode: '16877', note: 'kept' } });
  const before = await engine.dirAttributes('d');
  t.same(before, { mode: '16877', note: 'kept' });
  await engine.mkdirMarker('d', { ifMissing: true });
  t.same(await engine.dirAttributes('d'), before, 'an existing marker and its attributes are left alone');
  t.notOk(await engine.dirExists('e'));
  await engine.mkdirMarker('e', { ifMissing: true });
  t.ok(await engine.dirExists('e'), 'a missing marker is created');
});
