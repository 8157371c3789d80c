/**
 * docs/cli.md lists every command and every option its --help shows (issue #8: the reference must
 * not fall behind the CLI).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { COMMANDS } from '../../src/cli/commands.js';
import { BIN, ROOT, baseEnv, runCli, tempDir } from './fixtures/cli.js';

t.test('docs/cli.md covers every command and option', async (t) => {
  const doc = await readFile(path.join(ROOT, 'docs', 'cli.md'), 'utf8');
  const home = await tempDir(t);
  const names = [...COMMANDS.map((c) => c.command.split(' ')[0]), 'completion'];
  t.ok(names.length >= 17, `${names.length} commands`);
  for (const name of names) {
    t.ok(doc.includes(`\`${name}`), `${name} is documented`);
    if (name === 'completion') continue;
    const r = await runCli([name, '--help'], { env: { ...baseEnv(home), COLUMNS: '200' } });
    t.equal(r.code, 0, `${BIN} ${name} --help`);
    const options = [...r.stdout.matchAll(/^\s+(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]).filter((o) => o !== 'help' && o !== 'version');
    t.ok(options.length > 0, `${name}: options parsed from --help`);
    const missing = options.filter((o) => !doc.includes(`--${o}`));
    t.same(missing, [], `${name}: every option is in docs/cli.md`);
  }
});

t.test('docs/cli.md states the mount --cache-size default that mount --help shows', async (t) => {
  const doc = await readFile(path.join(ROOT, 'docs', 'cli.md'), 'utf8');
  const home = await tempDir(t);
  const r = await runCli(['mount', '--help'], { env: { ...baseEnv(home), COLUMNS: '200' } });
  const shown = /--cache-size[^\n]*\[default: ([0-9]+[KMG]?)\]/.exec(r.stdout)?.[1];
  t.equal(shown, '16M', 'mount --help: --cache-size default 16M');
  t.match(doc, /\| `--cache-size SIZE` \| Decrypted chunk cache shared by all readers \(default `16M`/, 'docs/cli.md says the same');
});
