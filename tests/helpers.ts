/**
 * Shared test helpers: WebGPU tests that are reported as ignored (with the reason) where no
 * adapter exists and fail instead when `CI` is set, tolerance comparisons that say where they
 * differ, and an assertion that a promise rejects with a given error.
 */

import { GpuBackend } from "../src/gpu/backend.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { hasWebGpu } from "../src/gpu/device.ts";
import type { Backend, Tensor } from "../src/backend/mod.ts";
import { defaultRuntimeDir } from "../tasks/_driver_env.ts";
import { layoutsOf } from "../tasks/_kernels.ts";

/**
 * Why the WebGPU tests cannot run here, or undefined where an adapter answers. Probed once, when
 * this module loads (about 0.1 s on llvmpipe), so that each test is registered as ignored or not
 * before Deno runs anything.
 */
// The adapter is requested in-process, as the tasks do: the same XDG_RUNTIME_DIR default keeps
// the driver's line out of the test output.
defaultRuntimeDir();
// DPO_SKIP_WEBGPU_PROBE: for subprocess fixtures that need no GPU (tests/helpers_test.ts), so that
// no adapter is created there: llvmpipe can abort at process exit after a probe (exit 134).
export const gpuMissing: string | undefined = Deno.env.get("DPO_SKIP_WEBGPU_PROBE") === "1"
  ? "the WebGPU probe is skipped (DPO_SKIP_WEBGPU_PROBE=1)"
  : (await hasWebGpu())
  ? undefined
  : "no WebGPU adapter (install mesa-vulkan-drivers for llvmpipe, run with --unstable-webgpu)";

let shared: Promise<GpuBackend> | undefined;

/** One GPU backend shared by the tests of a file (creating a device is slow on llvmpipe). */
export function sharedGpu(): Promise<GpuBackend> {
  // DPO_KERNEL_LAYOUTS=hardware runs every shared-backend test on the hardware layouts.
  shared ??= GpuBackend.create({ layouts: layoutsOf({}) });
  return shared;
}

/**
 * Registers a test that cannot run without some part of the machine: where `missing` names what
 * is absent, the test is reported as ignored (and the reason printed), unless the environment
 * variable CI is set, in which case it runs and fails with the reason.
 */
export function needsTest(
  missing: string | undefined,
  definition: Deno.TestDefinition,
): void {
  if (missing && Deno.env.get("CI")) {
    Deno.test({
      name: definition.name,
      fn: () => {
        throw new Error(`${missing}, and CI is set: CI must run every test`);
      },
    });
    return;
  }
  if (missing) console.warn(`ignoring "${definition.name}": ${missing}`);
  Deno.test({ ...definition, ignore: Boolean(missing) || definition.ignore });
}

/**
 * Registers a test that needs a WebGPU adapter: without one it is reported as ignored with the
 * reason, or fails where the environment variable CI is set.
 */
export function gpuTest(name: string, fn: (gpu: GpuBackend) => Promise<void> | void): void {
  needsTest(gpuMissing, {
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => await fn(await sharedGpu()),
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

/**
 * Asserts that `promise` rejects with an instance of `ErrorClass` whose message contains each
 * fragment (a string, or a pattern), and returns the error for further checks.
 */
export async function assertRejects<E extends Error>(
  promise: Promise<unknown> | (() => Promise<unknown>),
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  ...fragments: (string | RegExp)[]
): Promise<E> {
  let error: unknown;
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error(`expected a ${ErrorClass.name}, but nothing was thrown`);
  if (!(error instanceof ErrorClass)) {
    throw new Error(`expected a ${ErrorClass.name}, got ${String(error)}`, { cause: error });
  }
  for (const f of fragments) {
    const found = typeof f === "string" ? error.message.includes(f) : f.test(error.message);
    if (!found) {
      throw new Error(`the ${ErrorClass.name}'s message lacks ${String(f)}: ${error.message}`);
    }
  }
  return error;
}
