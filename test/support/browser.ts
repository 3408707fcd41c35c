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
