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

export interface BrowserFixtureOptions {
  /**
   * Atrium as a DICOM client too: the HTTP server gets a DicomClient (C-ECHO, C-FIND of peers) and a job
   * runner of every module's handlers runs the queued sends and retrieves (`runner`, woken by each queue).
   */
  dicom?: boolean;
  /** The engines under the archive (default sqlite+fs). */
  engines?: 'sqlite+fs' | 'postgres+s3';
}

/** A test archive holding some corpus files, Atrium's HTTP server over it, and a browser: the UI tests' setup. */
export async function startBrowserFixture(corpusFiles: string[], options: BrowserFixtureOptions = {}) {
  const { readFile } = await import('node:fs/promises');
  const { createTestArchive } = await import('./archive.ts');
  const { createHttpServer } = await import('../../src/http/server.ts');
  const { jobRunner } = await import('../../src/app.ts');
  const { DicomClient } = await import('../../src/dimse/services/scu.ts');
  const t = await createTestArchive(options.engines ?? 'sqlite+fs');
  const stored = [];
  for (const name of corpusFiles) {
    stored.push(await t.archive.ingest.ingest([await readFile(new URL(`../../../shared/testdata/dicom/${name}`, import.meta.url))], { source: 'test', originalName: name }));
  }
  const runner = options.dicom ? jobRunner(t.archive, { pollIntervalMs: 100 }) : null;
  const http = await createHttpServer(t.archive, runner ? { client: new DicomClient(t.archive), onJobQueued: () => runner.wake() } : {});
  const base = await http.listen({ host: '127.0.0.1', port: 0 });
  await runner?.start();
  const browser = await launchBrowser();
  return {
    t, base, browser, stored,
    /** The job runner (with `dicom`), null without. */
    runner,
    async close() {
      await browser.close();
      await http.close();
      await runner?.stop();
      await t.cleanup();
    },
  };
}
