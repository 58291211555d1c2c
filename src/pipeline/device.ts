/**
 * The `--device webgpu|cpu|auto` choice: WebGPU when asked or available, the CPU reference
 * backend when asked, or (auto) when no adapter exists, with a warning.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { CpuBackend } from "../cpu/backend.ts";
import { GpuBackend } from "../gpu/backend.ts";
import { hasWebGpu, NoAdapterError } from "../gpu/device.ts";

/** Which backend to run on. */
export type DeviceChoice = "webgpu" | "cpu" | "auto";

/**
 * Creates the backend for `choice`.
 *
 * @param warn receives the fallback warning of `auto`. @default console.warn
 * @param gpu the WebGPU context's options (kernel layouts, tuner). @default none
 * @throws {NoAdapterError} for `webgpu` when there is no adapter.
 */
export async function createBackend(
  choice: DeviceChoice = "auto",
  { warn = console.warn, gpu }: {
    warn?: (message: string) => void;
    gpu?: Parameters<typeof GpuBackend.create>[0];
  } = {},
): Promise<Backend> {
  if (choice === "cpu") return new CpuBackend("f32");
  if (choice === "webgpu" || await hasWebGpu()) {
    try {
      return await GpuBackend.create(gpu);
    } catch (error) {
      if (choice === "webgpu" || !(error instanceof NoAdapterError)) throw error;
    }
  }
  warn(
    "warning: no WebGPU adapter found; running on the CPU reference backend (slow). " +
      "Install the software Vulkan driver (`sudo apt-get install -y mesa-vulkan-drivers`) " +
      "or a GPU driver for WebGPU, or pass --device cpu to silence this warning.",
  );
  return new CpuBackend("f32");
}
