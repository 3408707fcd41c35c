import { chromium, type Browser } from 'playwright-core';

/**
 * Headless Debian Chromium driven by playwright-core (no browser download: `npm test` installs the
 * `chromium` package). The flags keep it off the network this machine does not have.
 */
export async function launchBrowser(): Promise<Browser> {
  return await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** A test archive holding some corpus files, Atrium's HTTP server over it, and a browser: the UI tests' setup. */
export async function startBrowserFixture(corpusFiles: string[]) {
  const { readFile } = await import('node:fs/promises');
  const { createTestArchive } = await import('./archive.ts');
  const { createHttpServer } = await import('../../src/http/server.ts');
  const t = await createTestArchive('sqlite+fs');
  const stored = [];
  for (const name of corpusFiles) {
    stored.push(await t.archive.ingest.ingest([await readFile(new URL(`../../../shared/testdata/dicom/${name}`, import.meta.url))], { source: 'test', originalName: name }));
  }
  const http = await createHttpServer(t.archive);
  const base = await http.listen({ host: '127.0.0.1', port: 0 });
  const browser = await launchBrowser();
  return {
    t, base, browser, stored,
    async close() {
      await browser.close();
      await http.close();
      await t.cleanup();
    },
  };
}
