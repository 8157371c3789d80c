// A mount daemon for tests that kill it: mounts an EncryptedFileSystem over the memory store at
// argv[2] with binding argv[3] (auto_unmount when argv[4] is "auto"), prints "ready <pid>" and serves
// until killed. Run with `node --import tsx`.
import { mountMemory } from './harness.js';

const [mnt, binding = 'fuse3', auto = 'auto'] = process.argv.slice(2);
const teardowns: (() => unknown)[] = [];
const m = await mountMemory({ teardown: (fn) => teardowns.push(fn) }, {
  binding,
  mountOptions: { autoUnmount: auto === 'auto' },
  mountpoint: mnt,
});
process.stdout.write(`ready ${process.pid} ${m.mnt}\n`);
process.on('SIGTERM', async () => {
  for (const fn of teardowns.reverse()) await fn();
  process.exit(0);
});
