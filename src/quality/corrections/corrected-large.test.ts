/**
 * A corrected 1 GiB instance is served (the whole object, and the data set DIMSE sends) with the correction
 * spliced into its head while the rest streams through: the process's peak RSS (VmHWM, measured by the kernel)
 * stays under the bounded-memory ceiling the other large-object tests use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEAK_RSS_LIMIT, watchPeakRss } from '../../../test/support/memory.ts';
import { pixelDataLength } from '../../synthetic/synthetic-instance.ts';

const CHILD = fileURLToPath(new URL('../../../test/support/corrected-retrieve-child.ts', import.meta.url));
const FRAMES = 2048; // 2048 x 512 x 512 x 2 bytes = 1 GiB of pixel data

test('a corrected 1 GiB instance is served with its correction in bounded memory', { timeout: 10 * 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-corrected-large-'));
  try {
    const child = spawn(process.execPath, [CHILD], { env: { ...process.env, ATRIUM_DATA: dir, FRAMES: String(FRAMES) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const peak = watchPeakRss(child);
    let output = '';
    child.stdout!.on('data', (c) => (output += c));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, output);
    const r = JSON.parse(output.trim().split('\n').pop()!);
    assert.ok(r.storedSize > pixelDataLength({ frames: FRAMES, rows: 512, columns: 512 }));
    assert.ok(r.headHasNewId && r.headHasOldId, 'the served head carries the new Patient ID, and the old one in Original Attributes Sequence');
    assert.ok(r.datasetHeadHasNewId);
    assert.notEqual(r.servedSha256, r.storedSha256);
    assert.ok(r.servedSize > r.storedSize && r.servedSize - r.storedSize < 1024, `served ${r.servedSize} vs stored ${r.storedSize}`);
    assert.ok(r.datasetSize < r.servedSize);
    t.diagnostic(`served ${(r.servedSize / 2 ** 30).toFixed(2)} GiB corrected twice (instance, data set): peak RSS ${(peak() / 2 ** 20).toFixed(0)} MB`);
    assert.ok(peak() > 0 && peak() < PEAK_RSS_LIMIT, `peak RSS ${(peak() / 2 ** 20).toFixed(0)} MB`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
