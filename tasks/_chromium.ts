/**
 * Headless Chromium with WebGPU on SwiftShader (Vulkan on the CPU), for `deno task web-measure`
 * and the browser tests: the flags DEVELOPERS.md names.
 *
 * @module
 */

import { type Browser, chromium } from "playwright-core";

/** Where Chromium is looked for; `CHROMIUM_PATH` overrides (e.g. a Chrome elsewhere). */
export function chromiumPath(): string {
  return Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
}

/** Chromium's flags for WebGPU through SwiftShader, headless, with no side traffic. */
export const WEBGPU_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--disable-vulkan-surface",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Launches Chromium with WebGPU on SwiftShader. */
export function launchWebGpuChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: WEBGPU_FLAGS });
}
