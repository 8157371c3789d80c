// The mount's --upload-memory budget: parts in flight and the pool of finished part buffers.
import t from 'tap';

import { DEFAULT_UPLOAD_MEMORY, uploadBudget } from '../../src/cli/mount.js';

const MiB = 1024 * 1024;

t.test('uploadBudget', async (t) => {
  t.same(uploadBudget(DEFAULT_UPLOAD_MEMORY, 8 * MiB), { uploadConcurrency: 2, partPoolBytes: 24 * MiB }, 'default: 3 parts, 2 in flight');
  t.same(uploadBudget(40 * MiB, 8 * MiB), { uploadConcurrency: 4, partPoolBytes: 40 * MiB }, 'the engine default (4 in flight) is 40M');
  t.same(uploadBudget(30 * MiB, 8 * MiB), { uploadConcurrency: 2, partPoolBytes: 24 * MiB }, 'rounded down to whole parts');
  t.same(uploadBudget(0, 8 * MiB), { uploadConcurrency: 1, partPoolBytes: 16 * MiB }, 'at least 2 parts: one uploads while the next fills');
});
