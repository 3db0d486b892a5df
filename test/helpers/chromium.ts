// Debian's Chromium driven by playwright-core, for the browser tests. Missing Chromium skips them with a printed
// reason; under CI (CI=true) it is an error, because CI must run them (.ci/run installs it).
// Debian's `chromium-headless-shell` (Chromium's old headless mode, the build Playwright itself runs headless) when it
// is installed, else the full `chromium` in its new headless mode: the same Blink, at about half the CPU for these
// tests (the five browser files: ~26-29 s of CPU against ~46-55 s, measured 6 December), which the 2-core suite needs.
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const SHELL = '/usr/bin/chromium-headless-shell';
export const CHROMIUM = existsSync(SHELL) ? SHELL : '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

/** Call at the top of a browser test file: prints why its tests are skipped, or fails under CI. */
export function requireChromium(testName: string): boolean {
  if (haveChromium) return true;
  const reason = `${testName}: skipped, ${CHROMIUM} is missing (apt-get install -y chromium-headless-shell, or chromium)`;
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
