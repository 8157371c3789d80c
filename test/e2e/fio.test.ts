// fio with verification, sequential and random patterns (small sizes), through a real mount.
import path from 'node:path';
import t from 'tap';

import { mount, run, setupStore } from './fixtures/mount.js';

const store = await setupStore(t);
const m = await mount(t, store);
const q = JSON.stringify;
const common = `--ioengine=psync --fallocate=none --verify=crc32c --do_verify=1 --verify_fatal=1 --end_fsync=1 --group_reporting --verify_state_save=0`; // no state files in the cwd

for (const [name, args] of [
  ['sequential write, 64 KiB blocks', `--rw=write --bs=64k --size=16m`],
  ['sequential write, odd 3000-byte blocks', `--rw=write --bs=3000 --size=3m`],
  ['random write, 4 KiB blocks', `--rw=randwrite --bs=4k --size=4m`],
  ['random write, mixed block sizes', `--rw=randwrite --bsrange=512-64k --size=4m`],
  ['random read/write mix, two jobs', `--rw=randrw --bs=16k --size=4m --numjobs=2`],
  ['random write, O_DIRECT (verify reads bypass the page cache)', `--rw=randwrite --bs=4k --size=2m --direct=1`],
] as const) {
  t.test(`fio: ${name}`, async (t) => {
    const dir = path.join(m.mnt, name.replace(/[^a-z0-9]+/gi, '-'));
    await run(`mkdir -p ${q(dir)}`);
    const out = await run(`fio --name=job --directory=${q(dir)} ${args} ${common} --output-format=terse --terse-version=3`, { timeoutMs: 300_000 });
    const fields = out.trim().split('\n').pop()!.split(';');
    t.equal(fields[4], '0', 'fio reports no errors (data verified)');
  });
}

t.test('fio files survive a remount and verify again', async (t) => {
  const dir = path.join(m.mnt, 'reverify');
  await run(`mkdir -p ${q(dir)}`);
  await run(`fio --name=job --directory=${q(dir)} --rw=randwrite --bs=8k --size=2m --ioengine=psync --fallocate=none --verify=md5 --do_verify=0 --verify_state_save=0 --end_fsync=1`);
  await m.stop();
  const again = await mount(t, store, [], 'mnt2');
  const out = await run(`fio --name=job --directory=${q(path.join(again.mnt, 'reverify'))} --rw=randread --bs=8k --size=2m --ioengine=psync --verify=md5 --verify_only --verify_state_load=0 --verify_state_save=0 --output-format=terse --terse-version=3`);
  t.equal(out.trim().split('\n').pop()!.split(';')[4], '0', 'verify_only after remount');
});
