/**
 * Headless Chromium for tests, through playwright-core driving the system's Chromium (Debian's
 * `chromium` package; playwright's own browser download is never used). Tests that need it skip
 * with the reason where no Chromium is installed, and fail instead when `CI` is set — the same
 * policy as `gpuTest` in tests/helpers.ts.
 */

import { type Browser, chromium, type Page } from "playwright-core";

/** Where Chromium is looked for; `CHROMIUM_PATH` overrides (e.g. a Chrome elsewhere). */
export function chromiumPath(): string {
  return Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
}

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

/**
 * Registers a test that needs headless Chromium and hands it a fresh page (the browser is closed
 * afterwards, pass or fail). Without Chromium it prints why it skips, unless the environment
 * variable CI is set, in which case it fails.
 */
export function browserTest(
  name: string,
  fn: (page: Page, browser: Browser) => Promise<void> | void,
): void {
  Deno.test({
    name,
    // playwright keeps a pipe and a child process whose teardown outlives the test's last await.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async (t) => {
      if (!(await hasChromium())) {
        const why = `no Chromium at ${chromiumPath()} (apt-get install chromium, or set ` +
          `CHROMIUM_PATH)`;
        if (Deno.env.get("CI")) throw new Error(`${why} in CI`);
        console.warn(`skipping "${t.name}": ${why}`);
        return;
      }
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
