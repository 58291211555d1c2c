/**
 * Headless Chromium for tests, through playwright-core driving the system's Chromium (Debian's
 * `chromium` package; playwright's own browser download is never used). Tests that need it are
 * reported as ignored, with the reason, where no Chromium is installed, and fail instead when `CI`
 * is set — `needsTest` in tests/helpers.ts, as `gpuTest`.
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { needsTest } from "./helpers.ts";

import { chromiumPath } from "../tasks/_chromium.ts";

export { chromiumPath };

/** Whether the Chromium executable exists. */
export async function hasChromium(): Promise<boolean> {
  try {
    return (await Deno.stat(chromiumPath())).isFile;
  } catch {
    return false;
  }
}

/**
 * Launches Chromium headless with no network side traffic (no QUIC, sync, component updates or
 * background fetches). playwright gives each launch a fresh temporary user data dir and deletes
 * it on close, so runs never share a profile. `--no-sandbox` because tests often run as root in
 * containers, where Chromium's sandbox cannot start.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Why the browser tests cannot run here, or undefined; probed once, when this module loads. */
export const chromiumMissing: string | undefined = (await hasChromium())
  ? undefined
  : `no Chromium at ${chromiumPath()} (apt-get install chromium, or set CHROMIUM_PATH)`;

/**
 * Registers a test that needs headless Chromium and hands it a fresh page (the browser is closed
 * afterwards, pass or fail). Without Chromium it is reported as ignored with the reason, or fails
 * where the environment variable CI is set.
 */
export function browserTest(
  name: string,
  fn: (page: Page, browser: Browser) => Promise<void> | void,
): void {
  needsTest(chromiumMissing, {
    name,
    // playwright keeps a pipe and a child process whose teardown outlives the test's last await.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await fn(page, browser);
      } finally {
        await browser.close();
      }
    },
  });
}
