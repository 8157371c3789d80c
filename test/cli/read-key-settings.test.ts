/**
 * --read-key-file settings: repeatable flag, comma-separated S3CRYPTFS_READ_KEY_FILE, a string or a
 * list in the config file (relative to it); flag > env > config as a group; bad values are errors.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { resolveSettings } from '../../src/cli/config.js';
import { GLOBAL_OPTIONS } from '../../src/cli/options.js';
import { tempDir } from './fixtures/cli.js';

t.test('read key files from flags, environment and config file', async (t) => {
  const dir = await tempDir(t);
  const config = path.join(dir, 'config.json');
  await writeFile(config, JSON.stringify({ 'read-key-file': ['old.key', '/abs/older.key'] }));
  const env = { HOME: dir };
  const argv = (await yargs(['x', '--read-key-file', '/a', '--read-key-file', '/b']).options(GLOBAL_OPTIONS).parseAsync()) as Record<string, unknown>;

  let s = await resolveSettings({ argv, env: { ...env, S3CRYPTFS_READ_KEY_FILE: '/e' }, configFlag: config });
  t.same(s.readKeyFiles, { files: ['/a', '/b'], source: 'flag' }, 'repeated flag wins');
  s = await resolveSettings({ argv: {}, env: { ...env, S3CRYPTFS_READ_KEY_FILE: '/c, /d' }, configFlag: config });
  t.same(s.readKeyFiles, { files: ['/c', '/d'], source: 'env' }, 'comma-separated environment next');
  s = await resolveSettings({ argv: {}, env, configFlag: config });
  t.same(s.readKeyFiles, { files: [path.join(dir, 'old.key'), '/abs/older.key'], source: 'config' }, 'config file list, relative to the file');
  await writeFile(config, JSON.stringify({ readKeyFile: 'one.key' }));
  s = await resolveSettings({ argv: {}, env, configFlag: config });
  t.same(s.readKeyFiles.files, [path.join(dir, 'one.key')], 'a single string, camelCase key');
  s = await resolveSettings({ argv: {}, env: { HOME: dir } });
  t.same(s.readKeyFiles, { files: [] }, 'none by default');
  await writeFile(config, JSON.stringify({ 'read-key-file': [42] }));
  await t.rejects(resolveSettings({ argv: {}, env, configFlag: config }), { exitCode: 10, message: /read-key-file.*non-empty string/ }, 'a non-string is a config error');
});
