/**
 * The optimizer's per-step scalars and their device layout, and the chunking of the gradient-norm
 * reduction: one layout shared by the CPU reference and the WGSL kernels, so one allocation and
 * one summation order serve both backends.
 *
 * @module
 */

/** Per-step scalars of the optimizer, written to the device before each submit (no readback). */
export interface OptimizerHyper {
  /** Learning rate of this step (schedule already applied). */
  lr: number;
  /** 1-based optimizer step, for Adam's bias correction. */
  step: number;
  /** Adam's β1 (first-moment decay). */
  beta1: number;
  /** Adam's β2 (second-moment decay). */
  beta2: number;
  /** Adam's and RMSprop's ε. */
  eps: number;
  /** Weight decay coefficient. */
  weightDecay: number;
  /** RMSprop smoothing constant (PyTorch's `alpha`). */
  alpha: number;
  /** SGD / RMSprop momentum. */
  momentum: number;
  /** Global gradient-norm clip; 0 or Infinity = off. */
  maxGradNorm: number;
}

/** Number of f32 slots of the hyper tensor written by {@link Backend.writeHyper}. */
export const HYPER_SLOTS = 16;

/**
 * Layout of the hyper tensor (f32 slots), shared by the CPU and WGSL optimizers:
 * 0 lr, 1 beta1, 2 beta2, 3 eps, 4 weightDecay, 5 Adam step size `lr / (1 - beta1^step)`,
 * 6 `sqrt(1 - beta2^step)`, 7 alpha, 8 momentum, 9 maxGradNorm (0 = off), 10 step,
 * 11 `1 - beta1`, 12 `1 - beta2`, 13 `1 - alpha` (as float64 differences rounded once: the f32
 * of 0.999 is not exactly 0.999, and PyTorch subtracts in float64).
 * Slots 5 and 6 are computed in float64 on the host, as PyTorch computes them in Python floats.
 */
export function packHyper(h: OptimizerHyper): Float32Array {
  const out = new Float32Array(HYPER_SLOTS);
  out[0] = h.lr;
  out[1] = h.beta1;
  out[2] = h.beta2;
  out[3] = h.eps;
  out[4] = h.weightDecay;
  out[5] = h.lr / (1 - Math.pow(h.beta1, h.step));
  out[6] = Math.sqrt(1 - Math.pow(h.beta2, h.step));
  out[7] = h.alpha;
  out[8] = h.momentum;
  out[9] = Number.isFinite(h.maxGradNorm) ? h.maxGradNorm : 0;
  out[10] = h.step;
  out[11] = 1 - h.beta1;
  out[12] = 1 - h.beta2;
  out[13] = 1 - h.alpha;
  return out;
}

/** Largest number of per-chunk partial sums; the final reduction reads them all in order. */
export const MAX_PARTIALS = 1024;
/** Elements per partial sum at least (small arrays use a single partial). */
export const MIN_CHUNK = 2048;

/**
 * Number of elements the `partial` tensor of {@link sumSquares} needs for `n` elements. The same
 * layout as the WebGPU kernel (`src/gpu/kernels/optimizer.ts`), so one allocation fits both.
 *
 * @example
 * ```ts
 * const partial = backend.alloc("optimizer", partialSlots(parameterCount));
 * ```
 */
export function partialSlots(n: number): number {
  return Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(n / MIN_CHUNK)));
}

/**
 * Elements summed into each partial: `ceil(n / partialSlots(n))` rounded up to 64, so that each
 * chunk starts on a 256-byte boundary (a WebGPU view can start there).
 */
export function chunkSize(n: number): number {
  return Math.max(64, Math.ceil(n / partialSlots(n) / 64) * 64);
}

/**
 * Elements the per-thread sums of a chunk cut by a buffer boundary are carried in, between the
 * dispatches of a `sumSquares` over an arena in pieces: two halves of 256 (one workgroup).
 */
export const NORM_CARRY_SLOTS = 512;

/**
 * Elements of the `partial` tensor of `sumSquares` for `n` elements: {@link partialSlots}, rounded
 * up to 64 (a binding offset), then {@link NORM_CARRY_SLOTS}. The CPU uses only the first part.
 */
export function normScratchSlots(n: number): number {
  return Math.ceil(partialSlots(n) / 64) * 64 + NORM_CARRY_SLOTS;
}
