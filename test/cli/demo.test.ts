// `s3cryptfs demo --no-mount`: embedded S3, key, init, round trip, ciphertext-only check.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { baseEnv, runCli, tempDir } from './fixtures/cli.js';

t.test('demo round trip with the embedded S3 server', async (t) => {
  const dir = await tempDir(t);
  const demoDir = path.join(dir, 'demo-state');
  const r = await runCli(['demo', '--no-mount', '--dir', demoDir], { env: baseEnv(dir), cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /embedded S3 server \(s3rver\): http:\/\/127\.0\.0\.1:\d+/);
  t.match(r.stdout, /initialised s3:\/\/demo/);
  t.match(r.stdout, /get\s+data\/random\.bin: \d+ bytes, identical/);
  t.match(r.stdout, /found in the server's files: none/);
  t.equal((await stat(path.join(demoDir, 'demo.key'))).mode & 0o777, 0o600, 'demo key is 0600');
  // A second run reuses the key and the initialised bucket.
  const again = await runCli(['demo', '--no-mount', '--dir', demoDir], { env: baseEnv(dir), cwd: dir });
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /already initialised/);
});
