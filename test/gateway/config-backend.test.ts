// backend.unsigned_payload in the gateway config file: parsed as a boolean, anything else refused.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { GatewayConfigError, resolveGatewayConfig } from '../../src/gateway/config.js';

const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-gwcfg-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

async function resolveWith(backend: Record<string, unknown>) {
  const file = path.join(dir, `gw-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify({
    http_listen: '127.0.0.1:0',
    allowed_buckets: ['bucket-one'],
    credentials: [{ access_key_id: 'AKIDEXAMPLE0001', secret_access_key: 'secret-secret-secret' }],
    backend,
  }));
  return resolveGatewayConfig({ argv: {}, env: {}, file });
}

t.test('unsigned_payload', async (t) => {
  t.equal((await resolveWith({})).backend.unsignedPayload, undefined, 'absent: the store picks by endpoint');
  t.equal((await resolveWith({ unsigned_payload: false })).backend.unsignedPayload, false);
  t.equal((await resolveWith({ unsigned_payload: true })).backend.unsignedPayload, true);
  await t.rejects(resolveWith({ unsigned_payload: 'yes' }), GatewayConfigError);
});
