// init + put/get/cat/ls/stat/rm/verify against a real s3rver, through the real CLI.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { hostPreferredCipher } from '../../src/engine/cipher-choice.js';
import { assertOneLineError, cliFixture } from './fixtures/cli.js';

t.test('key-file store: full round trip', async (t) => {
  const f = await cliFixture(t);
  const key = path.join(f.dir, 'k.key');
  t.equal((await f.cli(['keygen', '--out', key])).code, 0);
  const env = { S3CRYPTFS_KEY_FILE: key };

  const init = await f.cli(['init', f.url(), '--chunk-size', '16K'], { env });
  t.equal(init.code, 0, init.stderr);
  // The default cipher is the host's preferred one (AES-GCM with AES instructions).
  t.match(init.stdout, new RegExp(`initialised .*${hostPreferredCipher()}.*16 KiB.*key id [0-9a-f]{32}`));
  assertOneLineError(t, await f.cli(['init', f.url()], { env }), 9, /already initialized/);

  // put: file, file into "dir/", stdin
  const small = Buffer.from('hello, encrypted world\n');
  const big = randomBytes(1024 * 1024 + 4321);
  await writeFile(path.join(f.dir, 'small.txt'), small);
  await writeFile(path.join(f.dir, 'big.bin'), big);
  let r = await f.cli(['put', 'small.txt', f.url('docs/')], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /small\.txt -> s3:\/\/.*\/docs\/small\.txt \(23 bytes\)/);
  t.equal((await f.cli(['put', 'big.bin', f.url('data/big.bin')], { env })).code, 0);
  r = await f.cli(['put', '-', f.url('stdin.txt')], { env, input: 'from stdin\n' });
  t.equal(r.code, 0, r.stderr);
  t.equal((await f.cli(['put', 'empty', f.url('x')], { env })).code, 8, 'missing local file: 8');

  // get to a file, into a directory, to stdout; cat several
  r = await f.cli(['get', f.url('data/big.bin'), 'big.out'], { env });
  t.equal(r.code, 0, r.stderr);
  t.ok((await readFile(path.join(f.dir, 'big.out'))).equals(big), 'big file round trip');
  r = await f.cli(['get', f.url('docs/small.txt'), './'], { env });
  t.equal(r.code, 0, r.stderr);
  r = await f.cli(['get', f.url('data/big.bin'), '-'], { env });
  t.equal(r.code, 0);
  t.ok(r.stdoutBuf.equals(big), 'get to stdout');
  r = await f.cli(['cat', f.url('docs/small.txt'), f.url('stdin.txt')], { env });
  t.equal(r.stdout, 'hello, encrypted world\nfrom stdin\n');
  r = await f.cli(['-q', 'get', f.url('stdin.txt'), 'quiet.txt'], { env });
  t.equal(r.stdout, '', '--quiet');

  // ls
  r = await f.cli(['ls', f.url()], { env });
  t.equal(r.stdout, 'data/\ndocs/\nstdin.txt\n');
  r = await f.cli(['ls', '-r', f.url()], { env });
  t.equal(r.stdout, 'data/big.bin\ndocs/small.txt\nstdin.txt\n');
  r = await f.cli(['ls', '-l', f.url('data/')], { env });
  t.match(r.stdout, new RegExp(`^\\s+${big.length}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+big\\.bin\\n$`));
  r = await f.cli(['ls', '--json', f.url('docs')], { env });
  t.same(JSON.parse(r.stdout), { name: 'small.txt', dir: false, size: small.length, lastModified: JSON.parse(r.stdout).lastModified });
  assertOneLineError(t, await f.cli(['ls', f.url('nope/')], { env }), 8);

  // stat
  r = await f.cli(['stat', f.url('data/big.bin')], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`size:\\s+${big.length} `));
  t.match(r.stdout, /ciphertext size:\s+\d+/);
  t.match(r.stdout, new RegExp(`cipher:\\s+${hostPreferredCipher()}`));
  t.match(r.stdout, /chunk size:\s+16384/);
  t.match(r.stdout, /key id:\s+[0-9a-f]{32}/);
  r = await f.cli(['stat', '--json', f.url('docs/small.txt')], { env });
  const facts = JSON.parse(r.stdout);
  t.equal(facts.size, small.length);
  t.equal(facts.ciphertextSize, 132 + small.length + 16, 'header + data + one tag');
  t.match(facts.etag, /^".+"$/);
  t.notMatch(facts.s3Key, /small|docs/, 'names are encrypted');
  assertOneLineError(t, await f.cli(['stat', f.url('nope')], { env }), 8);

  // the bucket holds no plaintext: names or content
  const raw = await f.store.list(f.bucket, {});
  for (const o of raw.objects) t.notMatch(o.key, /small|big|docs|data|stdin/, `raw key ${o.key} is not plaintext`);
  for (const o of raw.objects) {
    const body = (await f.store.getObject(f.bucket, o.key)).body;
    t.notOk(body.includes('hello, encrypted world'), `no plaintext in ${o.key}`);
  }

  // verify
  r = await f.cli(['verify', f.url()], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /verified 3 object\(s\).*0 failed/);
  r = await f.cli(['verify', '--concurrency', '1', f.url('docs/')], { env });
  t.match(r.stdout, /verified 1 object/);

  // rm
  assertOneLineError(t, await f.cli(['rm', f.url('docs')], { env }), 2, /rm -r/);
  t.equal((await f.cli(['rm', f.url('stdin.txt')], { env })).code, 0);
  assertOneLineError(t, await f.cli(['rm', f.url('stdin.txt')], { env }), 8);
  t.equal((await f.cli(['rm', '-f', f.url('stdin.txt')], { env })).code, 0, 'rm -f ignores missing');
  r = await f.cli(['rm', '-r', f.url('data/'), f.url('docs')], { env });
  t.equal(r.code, 0, r.stderr);
  r = await f.cli(['ls', '-r', f.url()], { env });
  t.equal(r.stdout, '');
  const left = await f.store.list(f.bucket, {});
  t.same(left.objects.map((o) => o.key), ['.s3cryptfs.json'], 'only the config object is left');
  t.same(await readdir(f.dir).then((d) => d.filter((n) => n.includes('s3cryptfs-part'))), [], 'no temp files left');
});

t.test('prefix store, aes-256-gcm, plaintext names, S3CRYPTFS_KEY', async (t) => {
  const f = await cliFixture(t);
  const key = randomBytes(32).toString('hex');
  const env = { S3CRYPTFS_KEY: key };
  let r = await f.cli(['init', f.url('vault'), '--cipher', 'aes-256-gcm', '--no-encrypt-names'], { env });
  t.equal(r.code, 0, r.stderr);
  r = await f.cli(['put', '-', f.url('vault/a/b.txt')], { env, input: 'abc' });
  t.equal(r.code, 0, r.stderr);
  t.ok(await f.store.head(f.bucket, 'vault/a/b.txt'), 'plain name mode keeps the key readable');
  r = await f.cli(['cat', f.url('vault/a/b.txt')], { env });
  t.equal(r.stdout, 'abc');
  r = await f.cli(['stat', '--json', f.url('vault/a/b.txt')], { env });
  t.equal(JSON.parse(r.stdout).cipher, 'aes-256-gcm');
  assertOneLineError(t, await f.cli(['ls', f.url('elsewhere/')], { env }), 9, /init/);
});

t.test('settings precedence: flags > env > config file', async (t) => {
  const f = await cliFixture(t);
  const key = path.join(f.dir, 'k.key');
  await f.cli(['keygen', '--out', key]);
  const cfg = path.join(f.dir, 'cfg.json');
  // The config file names the right endpoint and key; the environment has none.
  await writeFile(cfg, JSON.stringify({ endpoint: f.endpoint, 'key-file': 'k.key', 'chunk-size': '8K' }));
  const noEndpoint = { AWS_ENDPOINT_URL: undefined };
  let r = await f.cli(['init', f.url(), '--config', cfg], { env: noEndpoint });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /chunk size 8 KiB/, 'config file value used; relative key-file resolved against the file');
  // env beats the config file: a dead endpoint in the environment.
  r = await f.cli(['ls', f.url(), '--config', cfg], { env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' } });
  t.equal(r.code, 5, 'env endpoint wins over config');
  // flag beats env.
  r = await f.cli(['ls', f.url(), '--config', cfg, '--endpoint', f.endpoint], { env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' } });
  t.equal(r.code, 0, r.stderr);
  // S3CRYPTFS_CONFIG names the file; a key flag beats the config file's key.
  const other = path.join(f.dir, 'other.key');
  await f.cli(['keygen', '--out', other]);
  r = await f.cli(['ls', f.url(), '--key-file', other], { env: { ...noEndpoint, S3CRYPTFS_CONFIG: cfg } });
  t.equal(r.code, 3, 'flag key wins over config key (and is wrong)');
});
