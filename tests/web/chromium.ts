/**
 * Headless Chromium with WebGPU on SwiftShader (Vulkan on the CPU), for the shader-compile and
 * web-app tests: the flags DEVELOPERS.md names. The report test's `launchChromium` disables the
 * GPU instead; these tests need it on.
 *
 * @module
 */

import type { Page } from "playwright-core";
import { chromiumMissing } from "../browser_helpers.ts";
import { launchWebGpuChromium } from "../../tasks/_chromium.ts";

export { launchWebGpuChromium };
import { needsTest } from "../helpers.ts";

/**
 * Serves one blank page on 127.0.0.1 (WebGPU needs a secure context, which localhost is and
 * about:blank is not) and returns its URL with a function that stops the server.
 */
export function serveBlankPage(): { url: string; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>webgpu</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

/**
 * Registers a test that gets a page of WebGPU-enabled Chromium, open on a localhost URL (`url`:
 * the blank page, or `serve`'s own server). Without Chromium the test is reported as ignored,
 * unless CI is set, where it fails (tests/helpers.ts `needsTest`).
 */
export function webGpuTest(
  name: string,
  fn: (page: Page, url: string) => Promise<void>,
  serve: () => { url: string; close: () => Promise<void> } = serveBlankPage,
): void {
  needsTest(chromiumMissing, {
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const server = serve();
      const browser = await launchWebGpuChromium();
      try {
        const page = await browser.newPage();
        await page.goto(server.url);
        await fn(page, server.url);
      } finally {
        await browser.close();
        await server.close();
      }
    },
  });
}
