/**
 * System integration: the mount(8) helper turns fstab options into `s3cryptfs mount` flags; the
 * systemd unit examples pass `systemd-analyze verify` (when it is installed); shell completion.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELPER = path.join(ROOT, 'scripts', 'mount.fuse.s3cryptfs');
const BIN = path.join(ROOT, 'bin', 's3cryptfs.js');
const UNITS = path.join(ROOT, 'examples', 'systemd');

function helper(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync('sh', [HELPER, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', S3CRYPTFS_MOUNT_DRY_RUN: '1', S3CRYPTFS_BIN: '/opt/s3cryptfs', ...env },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

t.test('mount.fuse.s3cryptfs: fstab options to mount flags', async (t) => {
  // As mount(8) calls it for: s3://b/vault /srv/vault fuse.s3cryptfs <options> 0 0
  let r = helper(['s3://b/vault', '/srv/vault', '-o', 'rw,_netdev,nofail,allow_other,uid=1000,gid=1000,umask=027,key_file=/etc/s3cryptfs/k,cache_size=256M,x-systemd.automount']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '/opt/s3cryptfs mount --daemon --allow-other --uid 1000 --gid 1000 --umask 027 --key-file /etc/s3cryptfs/k --cache-size 256M s3://b/vault /srv/vault');
  r = helper(['s3://b', '/mnt', '-o', 'ro,endpoint=http://127.0.0.1:9000,path_style,log_file=/var/log/v.log', '-n']);
  t.equal(r.stdout, '/opt/s3cryptfs mount --daemon --read-only --endpoint http://127.0.0.1:9000 --path-style --log-file /var/log/v.log s3://b /mnt');
  r = helper(['s3://b', '/mnt', '-o', 'key_file=/k/new,read_key_file=/k/old,read_key_file=/k/older']);
  t.equal(r.stdout, '/opt/s3cryptfs mount --daemon --key-file /k/new --read-key-file /k/old --read-key-file /k/older s3://b /mnt', 'read keys during a rotation');
  r = helper(['s3://b', '/mnt', '-o', 'env.AWS_PROFILE=backup,defaults']);
  t.equal(r.stdout, '/opt/s3cryptfs mount --daemon s3://b /mnt', 'env.* options are exported, not passed');
  r = helper(['s3://b', '/mnt', '-o', 'bogus=1']);
  t.equal(r.code, 2, 'unknown option refused');
  t.match(r.stderr, /unknown option: bogus=1/);
  r = helper(['/dev/sdb1', '/mnt']);
  t.equal(r.code, 2, 'source must be s3://');
  r = helper(['s3://b']);
  t.equal(r.code, 2, 'usage');
  r = helper(['s3://b', '/mnt', '-o', 'env.BAD-NAME=1']);
  t.equal(r.code, 2, 'bad variable name refused');
});

t.test('systemd unit examples pass systemd-analyze verify', async (t) => {
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.comment('skipped: systemd-analyze is not installed');
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 's3cryptfs-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const units = readdirSync(UNITS).filter((f) => /\.(service|mount|timer)$/.test(f));
  t.ok(units.length >= 5, `${units.length} units`);
  for (const u of units) {
    copyFileSync(path.join(UNITS, u), path.join(dir, u));
    // ExecStart must name an existing executable: point it at this checkout's launcher.
    writeFileSync(path.join(dir, u), readFileSync(path.join(dir, u), 'utf8').replaceAll('/usr/local/bin/s3cryptfs', BIN));
  }
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => path.join(dir, u))], { encoding: 'utf8', cwd: dir });
  // It reports problems as warnings on stderr and may still exit 0: demand silence about our units.
  const ours = (r.stderr + r.stdout).split('\n').filter((l) => units.some((u) => l.includes(u)));
  t.same(ours, [], 'no complaints about the units');
  t.equal(r.status, 0, r.stderr);
});

t.test('shell completion from yargs', async (t) => {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', S3CRYPTFS_FROM_SOURCE: '1', HOME: tmpdir() };
  const script = spawnSync(process.execPath, [BIN, 'completion'], { env, encoding: 'utf8' });
  t.equal(script.status, 0, script.stderr);
  t.match(script.stdout, /complete -o bashdefault -o default -F _s3cryptfs_yargs_completions s3cryptfs/, 'a bash completion script');
  const words = spawnSync(process.execPath, [BIN, '--get-yargs-completions', 's3cryptfs', 'rotate-key', '--'], { env, encoding: 'utf8' });
  t.equal(words.status, 0, words.stderr);
  t.match(words.stdout, /--new-key-file/, 'options of a command');
  const commands = spawnSync(process.execPath, [BIN, '--get-yargs-completions', 's3cryptfs', ''], { env, encoding: 'utf8' });
  for (const c of ['rotate-key', 'gc', 'verify', 'status', 'mount']) t.match(commands.stdout, new RegExp(`^${c}$`, 'm'), `command ${c}`);
});
