// Debian's Chromium driven by playwright-core, for the browser tests. Missing Chromium skips them with a printed
// reason; under CI (CI=true) it is an error, because CI must run them (.ci/run installs it).
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

/** Call at the top of a browser test file: prints why its tests are skipped, or fails under CI. */
export function requireChromium(testName: string): boolean {
  if (haveChromium) return true;
  const reason = `${testName}: skipped, ${CHROMIUM} is missing (apt-get install -y chromium)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the browser tests`);
  console.warn(reason);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Without the background-networking flags Chromium keeps dialling Google's hosts on this closed network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Path of a screenshot artifact under test/e2e/__screenshots__/ (gitignored). */
export function screenshotPath(file: string): string {
  const dir = new URL('../e2e/__screenshots__/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  return new URL(file, dir).pathname;
}
