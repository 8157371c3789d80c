/**
 * Lets the hypervisor back guest memory before a measurement. On this VM the first copy into guest
 * memory the hypervisor has not backed yet costs ~1 CPU s/GiB of kernel time, charged to whichever
 * process copies into it (a daemon filling the page cache through /dev/fuse, dd): `bytes` of zeros are
 * written to /dev/shm and removed, so the next allocations reuse backed pages. Measure at once: the
 * guest reports free memory back to the host (virtio-balloon free page reporting, 2 s after it is
 * freed), which makes it cold again. So `sync` goes before this, not after: a sync that flushed a
 * freshly written 1 GiB source file took long enough to undo the warm-up (read 1.8 -> 1.2 s/GiB).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export async function warmGuestMemory(bytes: number): Promise<void> {
  if (bytes <= 0) return;
  await execFileP('/bin/bash', ['-c', `f=/dev/shm/s3cryptfs-bench-warm-$$; head -c ${Math.ceil(bytes)} /dev/zero > $f; rc=$?; rm -f $f; exit $rc`]);
}
