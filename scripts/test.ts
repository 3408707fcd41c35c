/**
 * `npm test`: everything a fresh machine needs to run every test, then the tests. It installs what is
 * missing when it may (Debian packages as root), and fails loudly, naming the missing piece, when not.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { DEBIAN_TOOLS, testFiles } from './test-tiers.ts';

const root = new URL('..', import.meta.url).pathname;

function fail(message: string): never {
  console.error(`\nnpm test: ${message}\n`);
  process.exit(1);
}

function have(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function ensureDebianTools(): void {
  const missing = Object.entries(DEBIAN_TOOLS).filter(([command]) => !have(command)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  const packages = [...new Set(missing)];
  if (process.getuid?.() !== 0 || !have('apt-get')) fail(`missing Debian packages ${packages.join(', ')}: install them with apt-get`);
  console.log(`installing ${packages.join(', ')} with apt-get...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
}

async function reachable(host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

async function ensurePostgres(): Promise<void> {
  const host = process.env.PGHOST || '127.0.0.1';
  const port = Number(process.env.PGPORT || 5432);
  if (await reachable(host, port)) return;
  // On these machines PostgreSQL is a Debian cluster that may have been stopped; start it if we can.
  if (have('pg_ctlcluster') && existsSync('/etc/postgresql')) {
    const version = readdirSync('/etc/postgresql')[0];
    console.log(`PostgreSQL not answering on ${host}:${port}; starting cluster ${version}/main...`);
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
    for (let i = 0; i < 20 && !(await reachable(host, port)); i++) await new Promise((r) => setTimeout(r, 500));
  }
  if (!(await reachable(host, port))) fail(`PostgreSQL is not reachable on ${host}:${port}; the contract tests need it (trust auth, database "test")`);
}

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) fail(`Node ${process.versions.node} is running; Atrium needs Node 24 (run through npm so node_modules/.bin/node is used)`);
if (!existsSync(join(root, '../shared/testdata/dicom'))) fail('../shared/testdata/dicom is missing: the tests read the shared DICOM test files from beside the project');

ensureDebianTools();
await ensurePostgres();
if (!existsSync(join(root, 'vendor/ohif/index.html'))) {
  // npm install --ignore-scripts skips it; the viewer tests need it.
  spawnSync(process.execPath, [join(root, 'scripts/install-viewer.ts')], { stdio: 'inherit' });
  if (!existsSync(join(root, 'vendor/ohif/index.html'))) fail('the OHIF viewer could not be installed (scripts/install-viewer.ts)');
}

// Always rebuilt (tens of milliseconds): a console test never runs against a stale build.
if (spawnSync(process.execPath, [join(root, 'scripts/build-ui.ts')], { stdio: 'inherit' }).status !== 0) fail('the operations console did not build (see above)');

console.log('type-checking...');
for (const project of [root, join(root, 'src/http/ui/console')]) {
  const tsc = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', project], { stdio: 'inherit' });
  if (tsc.status !== 0) fail('type errors (see above)');
}

const only = process.argv.slice(2);
const files = only.length ? only : [...testFiles(join(root, 'src')), ...testFiles(join(root, 'test'))];
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit', cwd: root, env: { ...process.env, NODE_NO_WARNINGS: '1' },
});
process.exit(run.status ?? 1);
