/**
 * `npm run test:unit`: the tests that need nothing but Node and the repository (no PostgreSQL, S3 server,
 * Chromium or DCMTK; scripts/test-tiers.ts decides which), type-checked first like `npm test`. Fast
 * feedback on any machine; `npm test` stays the command that runs everything. `--list` prints every
 * test file's tier and why instead of running.
 *
 * So that a test which needs more than it shows cannot pass here by luck, the run points PostgreSQL at a
 * closed port and puts stand-ins for DCMTK and Chromium first on PATH that fail, naming themselves.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { delimiter, join } from 'node:path';
import { classifyTests, DEBIAN_TOOLS, UNIT_PROGRAMS } from './test-tiers.ts';

const root = new URL('..', import.meta.url).pathname;

function fail(message: string): never {
  console.error(`\nnpm run test:unit: ${message}\n`);
  process.exit(1);
}

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) fail(`Node ${process.versions.node} is running; Atrium needs Node 24 (run through npm so node_modules/.bin/node is used)`);

const tiers = classifyTests(root);
const unit = tiers.filter((tier) => tier.needs.length === 0);
if (process.argv.includes('--list')) {
  for (const tier of tiers) {
    console.log(tier.needs.length === 0 ? `unit  ${tier.file}` : `full  ${tier.file}`);
    for (const { need, why } of tier.needs) console.log(`        needs ${need}: ${why}`);
  }
  console.log(`\n${unit.length} of ${tiers.length} test files are unit tests`);
  process.exit(0);
}
if (!existsSync(join(root, '../shared/testdata/dicom'))) fail('../shared/testdata/dicom is missing: the tests read the shared DICOM test files from beside the project');

// Always rebuilt (tens of milliseconds): a console test never runs against a stale build.
if (spawnSync(process.execPath, [join(root, 'scripts/build-ui.ts')], { stdio: 'inherit' }).status !== 0) fail('the operations console did not build (see above)');

console.log('type-checking...');
for (const project of [root, join(root, 'src/http/ui/console')]) {
  const tsc = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', project], { stdio: 'inherit' });
  if (tsc.status !== 0) fail('type errors (see above)');
}

const standIns = mkdtempSync(join(os.tmpdir(), 'atrium-test-unit-'));
try {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: '1', PGHOST: '127.0.0.1', PGPORT: '1' };
  if (process.platform !== 'win32') {
    for (const command of Object.keys(DEBIAN_TOOLS).filter((c) => !UNIT_PROGRAMS.includes(c))) {
      const path = join(standIns, command);
      writeFileSync(path, `#!/bin/sh\necho "npm run test:unit hides ${command}: a test that runs it is not a unit test (see scripts/test-tiers.ts)" >&2\nexit 127\n`);
      chmodSync(path, 0o755);
    }
    env.PATH = `${standIns}${delimiter}${process.env.PATH ?? ''}`;
  }
  console.log(`${unit.length} of ${tiers.length} test files (\`npm run test:unit -- --list\` shows why the others need \`npm test\`)`);
  const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...unit.map((tier) => tier.file)], {
    stdio: 'inherit', cwd: root, env,
  });
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(standIns, { recursive: true, force: true });
}
