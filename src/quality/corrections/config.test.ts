// The corrections section: peers and the peers that also get Rejection Notes, from the file and the environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, sectionOf } from '../../config/config.ts';
import { correctionsConfig } from './config.ts';

test('corrections.rejectionNotes: per peer, from the file or ATRIUM_CORRECTIONS_REJECTION_NOTES; only peers listed in corrections.peers', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-corrections-config-'));
  try {
    const env = { ATRIUM_DATA: dir };
    assert.deepEqual(sectionOf(loadConfig({ env, sections: [correctionsConfig] }), correctionsConfig), { peers: [], rejectionNotes: [] });
    const file = path.join(dir, 'atrium.json');
    await writeFile(file, JSON.stringify({ corrections: { peers: ['PACS2', 'VNA'], rejectionNotes: ['VNA'] } }));
    assert.deepEqual(sectionOf(loadConfig({ env, file, sections: [correctionsConfig] }), correctionsConfig), { peers: ['PACS2', 'VNA'], rejectionNotes: ['VNA'] });
    const fromEnv = sectionOf(loadConfig({ env: { ...env, ATRIUM_CORRECTIONS_PEERS: 'A1,B2', ATRIUM_CORRECTIONS_REJECTION_NOTES: 'B2' }, sections: [correctionsConfig] }), correctionsConfig);
    assert.deepEqual(fromEnv, { peers: ['A1', 'B2'], rejectionNotes: ['B2'] });
    await writeFile(file, JSON.stringify({ corrections: { peers: ['PACS2'], rejectionNotes: ['OTHER'] } }));
    assert.throws(() => loadConfig({ env, file, sections: [correctionsConfig] }), (e) => e instanceof ConfigError && /corrections\.rejectionNotes: "OTHER" is not one of corrections\.peers/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
