/**
 * Installs the OHIF viewer's published build (the `dist/` of the @ohif/app package) into vendor/ohif, from
 * the npm registry, at a pinned version. Run by `npm install` (postinstall); not committed. Atrium serves
 * it at `/` with its own app-config.js pointing at Atrium's DICOMweb (src/http/viewer/routes.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OHIF_VERSION = '3.13.2';
const root = new URL('..', import.meta.url).pathname;
const target = join(root, 'vendor', 'ohif');
const stamp = join(target, '.atrium-version');

if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === OHIF_VERSION) {
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'atrium-ohif-'));
try {
  console.log(`installing the OHIF viewer ${OHIF_VERSION} from the npm registry...`);
  execFileSync('npm', ['pack', `@ohif/app@${OHIF_VERSION}`, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  execFileSync('tar', ['xzf', join(work, tarball), '-C', work, 'package/dist']);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(join(root, 'vendor'), { recursive: true });
  renameSync(join(work, 'package', 'dist'), target);
  writeFileSync(stamp, `${OHIF_VERSION}\n`);
  console.log(`OHIF viewer ${OHIF_VERSION} installed in vendor/ohif`);
} catch (error) {
  // Atrium runs without the viewer (its own pages stay at /admin); say so plainly rather than fail install.
  console.warn(`atrium: could not install the OHIF viewer: ${(error as Error).message}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
