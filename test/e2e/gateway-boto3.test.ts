// Debian's python3-boto3 against the gateway over s3rver (test/gateway/fixtures/boto3_check.py).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { clientEnv, gatewayFixture } from '../gateway/fixtures/gateway.js';
import { missing, run, TOOLS } from '../gateway/fixtures/tools.js';

const script = fileURLToPath(new URL('../gateway/fixtures/boto3_check.py', import.meta.url));
const skip = missing('python3') || (await run(TOOLS.python3, ['-c', 'import boto3'], { PATH: '/usr/bin:/bin' })).code !== 0 ? 'python3-boto3 is not installed (apt-get install python3-boto3)' : false;

t.test('boto3: conditional puts, ranges, multipart, 2,500-key paging', { skip }, async (t) => {
  const f = await gatewayFixture(t);
  const home = path.join(f.dir, 'home');
  await mkdir(home);
  const env = clientEnv(f, home, { GW_ENDPOINT: f.endpoint, GW_BUCKET: f.bucket, GW_WORKDIR: f.dir, PYTHONDONTWRITEBYTECODE: '1' });
  const r = await run(TOOLS.python3, [script], env, { timeoutMs: 400_000 });
  for (const line of r.stdout.trim().split('\n')) {
    if (line.startsWith('ok ')) t.pass(line.slice(3));
    else if (line.startsWith('FAIL ')) t.fail(line.slice(5));
  }
  t.equal(r.code, 0, r.stderr.slice(-3000));
  t.match(r.stdout, /^done$/m, 'the script ran to the end');
});
