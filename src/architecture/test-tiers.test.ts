import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { classifyTests } from '../../scripts/test-tiers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('each rule of the unit/full split, on a made-up project', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'atrium-tiers-'));
  const files: Record<string, string> = {
    'test/support/db.ts': "import pg from 'pg';\nexport const pool = new pg.Pool();\n",
    'test/support/helper.ts': "export { pool } from './db.ts';\n",
    'test/support/server.ts': "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nrequire('s3rver');\n",
    'test/support/browser.ts': "import { chromium } from 'playwright-core';\nexport const c = chromium;\n",
    'src/store.ts': "import pg from 'pg';\nexport const p = pg;\n",
    'src/certs.ts': "import { execFile } from 'node:child_process';\nimport { promisify } from 'node:util';\nexport const make = () => promisify(execFile)('openssl', ['version']);\n",
    'src/runner.ts': "import { execFile as run } from 'node:child_process';\nexport const go = (cmd: string) => run(cmd, []);\n",
    'src/type-only.test.ts': "import type { pool } from '../test/support/helper.ts';\nexport type P = typeof pool;\n",
    'src/postgres.test.ts': "import { pool } from '../test/support/helper.ts';\nvoid pool;\n",
    'src/node-only.test.ts': "import { spawn } from 'node:child_process';\nspawn(process.execPath, ['-v']);\n/x/.exec('x');\n",
    'src/dcmtk.test.ts': "import * as cp from 'node:child_process';\ncp.execFileSync('storescu', ['-h']);\n",
    'src/spawned-script.test.ts': "const SERVER = new URL('../test/support/server.ts', import.meta.url);\nvoid SERVER;\n",
    'src/dynamic.test.ts': "await import('../test/support/browser.ts');\n",
    'src/production-pg.test.ts': "import { p } from './store.ts';\nimport { make } from './certs.ts';\nvoid p; void make;\n",
    'src/production-program.test.ts': "import { go } from './runner.ts';\nvoid go;\n",
  };
  try {
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, file)), { recursive: true });
      await writeFile(path.join(root, file), text);
    }
    const needs = Object.fromEntries(classifyTests(root).map((t) => [t.file, t.needs.map((n) => n.need)]));
    assert.deepEqual(needs, {
      'src/dcmtk.test.ts': ['DCMTK'],
      'src/dynamic.test.ts': ['Chromium'],
      'src/node-only.test.ts': [],
      'src/postgres.test.ts': ['PostgreSQL'],
      'src/production-pg.test.ts': [],
      'src/production-program.test.ts': ['a program'],
      'src/spawned-script.test.ts': ['S3 server'],
      'src/type-only.test.ts': [],
    });
    const postgres = classifyTests(root).find((t) => t.file === 'src/postgres.test.ts')!;
    assert.equal(postgres.needs[0].why, 'src/postgres.test.ts -> test/support/helper.ts -> test/support/db.ts imports pg');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('no unit test uses a helper known to need PostgreSQL, an S3 server, Chromium or DCMTK', () => {
  // Known by name, as a second opinion on the rules: should one of these helpers come to reach its
  // server in a way the rules do not read, its tests would otherwise turn into unit tests unnoticed.
  const helpers = ['postgres.ts', 's3-server.ts', 'browser.ts', 'dcmtk.ts', 'dimse-peers.ts', 'archive.ts', 'orthanc.ts'];
  const tiers = classifyTests(ROOT);
  const unit = tiers.filter((t) => t.needs.length === 0).map((t) => t.file);
  assert.ok(unit.length >= 10, `only ${unit.length} unit test files`);
  assert.ok(unit.includes('src/architecture/test-tiers.test.ts'));
  assert.ok(unit.includes('src/adapters/blob/fs-blob-store.test.ts'));
  assert.ok(!unit.includes('src/adapters/blob/s3-blob-store.test.ts'));
  const pattern = new RegExp(`from '[./]*test/support/(${helpers.map((h) => h.replace('.', '\\.')).join('|')})'`);
  const misplaced = tiers.filter((t) => t.needs.length === 0)
    .filter((t) => pattern.test(readFileSync(path.join(ROOT, t.file), 'utf8')))
    .map((t) => t.file);
  assert.deepEqual(misplaced, []);
});
