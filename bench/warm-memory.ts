/**
 * Lets the hypervisor back guest memory before a measurement. On this VM the first copy into guest
 * memory the hypervisor has not backed yet costs ~1 CPU s/GiB of kernel time, charged to whichever
 * process copies into it (a daemon filling the page cache through /dev/fuse, dd): `bytes` of zeros are
 * written to /dev/shm and removed, so the next allocations reuse backed pages.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export async function warmGuestMemory(bytes: number): Promise<void> {
  if (bytes <= 0) return;
  await execFileP('/bin/bash', ['-c', `f=/dev/shm/s3cryptfs-bench-warm-$$; head -c ${Math.ceil(bytes)} /dev/zero > $f; rc=$?; rm -f $f; exit $rc`]);
}
