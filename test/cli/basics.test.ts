// Command-line surface that needs no S3 server: help, usage errors, keygen, config file errors.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { assertOneLineError, baseEnv, runCli, tempDir } from './fixtures/cli.js';

const COMMANDS = ['keygen', 'init', 'put', 'get', 'cat', 'ls', 'rm', 'stat', 'verify', 'demo'];

t.test('--help works for the program and every command', async (t) => {
  const home = await tempDir(t);
  const top = await runCli(['--help'], { env: baseEnv(home) });
  t.equal(top.code, 0);
  for (const c of COMMANDS) t.match(top.stdout, new RegExp(`s3cryptfs ${c}\\b`), `lists ${c}`);
  t.match(top.stdout, /Exit codes:/);
  const results = await Promise.all(COMMANDS.map((c) => runCli([c, '--help'], { env: baseEnv(home) })));
  results.forEach((r, i) => {
    t.equal(r.code, 0, `${COMMANDS[i]} --help exits 0`);
    t.match(r.stdout, new RegExp(`s3cryptfs ${COMMANDS[i]}`), `${COMMANDS[i]} --help shows its usage`);
    t.equal(r.stderr, '', `${COMMANDS[i]} --help writes nothing to stderr`);
  });
  const version = await runCli(['--version'], { env: baseEnv(home) });
  t.equal(version.code, 0);
  t.match(version.stdout, /^\d+\.\d+\.\d+/);
});

t.test('usage errors exit 2 with one line', async (t) => {
  const env = baseEnv(await tempDir(t));
  assertOneLineError(t, await runCli([], { env }), 2, /no command/);
  assertOneLineError(t, await runCli(['bogus'], { env }), 2, /unknown command "bogus"/);
  assertOneLineError(t, await runCli(['bogus', '--help'], { env }), 2, /unknown command/);
  assertOneLineError(t, await runCli(['keygen'], { env }), 2, /out/);
  assertOneLineError(t, await runCli(['ls', 's3://b', '--bogus-flag'], { env }), 2, /bogus-flag/);
  assertOneLineError(t, await runCli(['ls', '/not/an/s3/url'], { env }), 2, /s3:\/\//);
  assertOneLineError(t, await runCli(['init', 's3://b', '--cipher', 'rot13'], { env }), 2, /rot13|cipher/);
  assertOneLineError(t, await runCli(['init', 's3://b', '--chunk-size', 'lots'], { env }), 2, /chunk-size/);
});

t.test('keygen: 0600, refuses to overwrite, hex or base64', async (t) => {
  const dir = await tempDir(t);
  const env = baseEnv(dir);
  const key = path.join(dir, 'master.key');
  const r = await runCli(['keygen', '--out', key], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /key id [0-9a-f]{32}/);
  t.equal((await stat(key)).mode & 0o777, 0o600);
  const text = await readFile(key, 'utf8');
  t.match(text, /^[0-9a-f]{64}\n$/);
  t.notOk(r.stdout.includes(text.trim()), 'the key is not printed');
  assertOneLineError(t, await runCli(['keygen', '--out', key], { env }), 12, /already exists/);
  t.equal(await readFile(key, 'utf8'), text, 'existing key untouched');
  const b64 = path.join(dir, 'b64.key');
  t.equal((await runCli(['keygen', '-o', b64, '--encoding', 'base64'], { env })).code, 0);
  t.match(await readFile(b64, 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/);
  assertOneLineError(t, await runCli(['keygen', '--out', path.join(dir, 'no/such/dir/k')], { env }), 12, /cannot create/);
});

t.test('config file errors exit 10 with one line', async (t) => {
  const dir = await tempDir(t);
  const env = baseEnv(dir);
  const bad = path.join(dir, 'bad.json');
  await writeFile(bad, '{"endpoint": "http://127.0.0.1:1",');
  assertOneLineError(t, await runCli(['ls', 's3://b', '--config', bad], { env }), 10, /bad\.json: not valid JSON/);
  assertOneLineError(t, await runCli(['ls', 's3://b'], { env: { ...env, S3CRYPTFS_CONFIG: bad } }), 10, /not valid JSON/);
  await writeFile(bad, '{"endpont": "http://127.0.0.1:1"}');
  assertOneLineError(t, await runCli(['ls', 's3://b', '--config', bad], { env }), 10, /unknown setting "endpont"/);
  await writeFile(bad, '{"concurrency": "many"}');
  assertOneLineError(t, await runCli(['ls', 's3://b', '--config', bad], { env }), 10, /concurrency/);
  await writeFile(bad, '[1, 2]');
  assertOneLineError(t, await runCli(['ls', 's3://b', '--config', bad], { env }), 10, /JSON object/);
  assertOneLineError(t, await runCli(['ls', 's3://b', '--config', path.join(dir, 'missing.json')], { env }), 10, /no such file/);
  // The default location is read when it exists.
  const { mkdir } = await import('node:fs/promises');
  await mkdir(path.join(dir, '.config', 's3cryptfs'), { recursive: true });
  await writeFile(path.join(dir, '.config', 's3cryptfs', 'config.json'), 'not json');
  assertOneLineError(t, await runCli(['ls', 's3://b'], { env }), 10, /config\.json: not valid JSON/);
});

t.test('S3CRYPTFS_DEBUG=1 adds the stack trace', async (t) => {
  const dir = await tempDir(t);
  const bad = path.join(dir, 'bad.json');
  await writeFile(bad, 'nope');
  const r = await runCli(['ls', 's3://b', '--config', bad], { env: { ...baseEnv(dir), S3CRYPTFS_DEBUG: '1' } });
  t.equal(r.code, 10);
  t.match(r.stderr, /^s3cryptfs: .*\n.*Error.*\n\s+at /);
});
