/**
 * The options of a {@link GpuContext}: which kernel layouts run, the tuner that picks among
 * hardware candidates, the binding and buffer limits tests lower, and how f16 weights are widened.
 *
 * @module
 */

import type { GpuContext } from "./context.ts";
import type { F16Mode } from "./kernels/weight_load.ts";

/**
 * Which kernel layouts run: `software` (laid out for llvmpipe and SwiftShader), `hardware`
 * (workgroup-memory tiling for GPUs), or `auto`: software on software adapters, else hardware.
 */
export type KernelLayouts = "hardware" | "software" | "auto";

/**
 * Picks among bit-identical kernel candidates by measurement (src/gpu/tuner.ts): `choose`
 * answers a known choice or notes the shape for the next {@link GpuContext.finish}, which calls
 * `flush` to time what was noted.
 */
export interface KernelTuner {
  /** The chosen candidate's name for a shape key, or undefined (noted for tuning). */
  choose(ctx: GpuContext, key: string): string | undefined;
  /** Times the candidates of the shapes noted since the last flush. */
  flush(ctx: GpuContext): Promise<void>;
}

/** Options of {@link GpuContext}. */
export interface GpuContextOptions {
  /** Which layouts the kernels use. @default "auto" */
  layouts?: KernelLayouts;
  /** Chooses hardware candidates by measurement; without one the built-in choice runs. */
  tuner?: KernelTuner;
  /**
   * Bytes per storage binding at most, below the adapter's own limit: tests lower it to run the
   * split paths of large tensors on small ones. @default the adapter's maxStorageBufferBindingSize
   */
  maxBindingBytes?: number;
  /**
   * Bytes per buffer at most, below the adapter's own limit: tests lower it to run arenas split
   * across buffers (src/model/params.ts) on a small model. It lowers the binding limit with it.
   * @default the adapter's maxBufferSize
   */
  maxBufferBytes?: number;
  /**
   * How f16 weights are widened: `native` (WGSL's f16 type, where the device has `shader-f16`)
   * or `unpack` (`unpack2x16float` from u32 words, core WGSL); both exact. `native` falls back to
   * `unpack` on a device without the feature. @default native
   */
  f16Mode?: F16Mode;
}
