// The mount e2e files again on the fallback binding (`--fuse=fuse-native`), so that `npm test`
// exercises both bindings (every other mount test runs on the default, fuse3). Each file runs as a
// child test process with S3CRYPTFS_TEST_FUSE=fuse-native, one after the other (the suite already
// runs two files at a time), and its TAP output becomes a subtest here.
//
// Covered here on fuse-native: files, options, unmount, fio and hostile/mount (POSIX semantics through
// the binding, mount options, unmount/drain, random and O_DIRECT I/O, names). Not repeated, to keep
// the suite's time modest (this file adds about 4 minutes of one job on the loaded 2-core machine):
// errors (CLI refusals before any mount), rsync (2,000 files; fuse-native's mtime defect makes its
// second run re-send every file: ~16 minutes here; the defect is asserted in
// test/native/fuse-native.test.ts), leak and the key-source mounts (aws-cse, memkey, ops, faults),
// which do not depend on the binding. Any of them runs on fuse-native by hand:
//   S3CRYPTFS_TEST_FUSE=fuse-native npx tap test/e2e/rsync.test.ts
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { fuseSkipReason } from '../native/helpers/harness.js';

const skip = await fuseSkipReason('fuse-native');
if (skip) {
  t.plan(0, `fuse-native unavailable: ${skip}`);
  process.exit(0);
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILES = ['test/e2e/files.test.ts', 'test/e2e/options.test.ts', 'test/e2e/unmount.test.ts', 'test/e2e/fio.test.ts', 'test/hostile/mount.test.ts'];

for (const file of FILES) {
  // execArgv carries tap's loaders (TypeScript); the child reports TAP on stdout.
  await t.spawn(process.execPath, [...process.execArgv, path.join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, S3CRYPTFS_TEST_FUSE: 'fuse-native' },
    timeout: 600_000,
  }, `${file} on fuse-native`);
}
