/**
 * Builds the operations console (src/http/ui/console, Preact + TSX) into dist/ui with esbuild: one
 * script and one stylesheet, no source fetched at run time, served by src/http/ui/routes.ts under the
 * strict page CSP (no inline code: esbuild emits files, Preact and uPlot set styles through the DOM).
 * Run by `npm install` (postinstall), `npm start` (prestart), `npm run build:ui` and the test commands.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

export const CONSOLE_SOURCE = fileURLToPath(new URL('./console/', import.meta.url));
export const CONSOLE_DIST = fileURLToPath(new URL('../../../dist/ui/', import.meta.url));

export async function buildConsole(options: { outdir?: string; minify?: boolean } = {}): Promise<void> {
  await build({
    entryPoints: { console: `${CONSOLE_SOURCE}main.tsx` },
    outdir: options.outdir ?? CONSOLE_DIST,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: options.minify ?? true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
  });
}
