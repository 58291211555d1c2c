/**
 * Shared test helpers: WebGPU tests that skip (with the reason) where no adapter exists and fail
 * instead when `CI` is set, and tolerance comparisons that say where they differ.
 */

import { GpuBackend } from "../src/gpu/backend.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { hasWebGpu } from "../src/gpu/device.ts";
import type { Backend, Tensor } from "../src/backend/mod.ts";
import { defaultRuntimeDir } from "../tasks/_driver_env.ts";

let shared: Promise<GpuBackend | undefined> | undefined;

/** One GPU backend shared by the tests of a file (creating a device is slow on llvmpipe). */
export function sharedGpu(): Promise<GpuBackend | undefined> {
  // The adapter is requested in-process, as the tasks do: the same default keeps the driver's
  // XDG_RUNTIME_DIR line out of the test output.
  defaultRuntimeDir();
  shared ??= (async () => (await hasWebGpu()) ? await GpuBackend.create() : undefined)();
  return shared;
}

/**
 * Registers a test that needs a WebGPU adapter. Without one it prints why it skips, unless the
 * environment variable CI is set, in which case it fails.
 */
export function gpuTest(name: string, fn: (gpu: GpuBackend) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async (t) => {
      const gpu = await sharedGpu();
      if (!gpu) {
        if (Deno.env.get("CI")) {
          throw new Error(
            "no WebGPU adapter in CI: install mesa-vulkan-drivers and run with --unstable-webgpu",
          );
        }
        console.warn(
          `skipping "${t.name}": no WebGPU adapter (install mesa-vulkan-drivers for llvmpipe)`,
        );
        return;
      }
      await fn(gpu);
    },
  });
}

/** Deterministic pseudo-random floats in [-scale, scale) (mulberry32). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * scale;
  }
  return out;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise, reporting the worst index.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, label = "" }: { atol?: number; rtol?: number; label?: string } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const bound = atol + rtol * Math.abs(expected[i]);
    if (!(err <= bound) && (worst < 0 || err - bound > worstExcess || Number.isNaN(err))) {
      worst = i;
      worstExcess = err - bound;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: mismatch at ${worst}: got ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol})`,
    );
  }
}

/** Uploads host data into a new tensor of `backend`. */
export function upload(
  backend: Backend,
  data: ArrayLike<number>,
  dtype: "f32" | "i32" = "f32",
): Tensor {
  const t = backend.alloc("activations", data.length, dtype);
  backend.write(t, data);
  return t;
}

/** A CPU backend in float32, for references. */
export function cpu(precision: "f32" | "f64" = "f32"): CpuBackend {
  return new CpuBackend(precision);
}
