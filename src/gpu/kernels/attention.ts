/**
 * Causal grouped-query attention in WGSL, forward and backward side by side; the semantics are
 * those of `src/cpu/attention.ts` (HF eager attention: kv head `floor(h / (H/Hkv))`, scores
 * scaled by 1/sqrt(D), max-subtracted f32 softmax, causal mask). This file holds the
 * software-adapter layout; the hardware one is attention_flash.ts. Neither holds a (T, T) matrix:
 * the forward saves each query row's score max and exp-sum (stats, (B,H,T,2)) and every kernel
 * recomputes the scores it needs, so memory grows with T, not T^2. The software kernels recompute
 * them by the same operations in the same order as the earlier kernels that stored them (scores,
 * max, exp(score - max), their sum, probs = e / sum, then probs * v), so results are the same bits.
 *
 * Layout: every invocation owns whole rows, so no workgroup memory, barriers or cross-invocation
 * reductions are needed. The query rows of one kv head are numbered `qi = t * G + g` (G = H/Hkv
 * query heads per kv head); the forward and dq kernels give an invocation `rows` consecutive
 * query rows, which share every k and v row they read, and dk/dv give it `keys` consecutive key
 * rows, which share every q and dOut row. Each invocation keeps its own rows (q, dOut and the
 * D-wide accumulators) in private arrays. Why (measured on llvmpipe, Mesa 22.3, which runs the
 * invocations of a workgroup as SIMD lanes): a storage or workgroup-memory load costs about 23
 * CPU cycles per lane whether or not its address is uniform across the workgroup (it is a
 * per-lane loop there, inside or outside loops), while a private-array access with a dynamic
 * index costs about 1, and a barrier about 0.4 us per workgroup. So the cost of a kernel is its
 * storage loads per lane, and each query row keeps its scores (forward) or its probs and dProbs
 * (dq kernel) in private arrays of SCORE_FLOATS / rows keys (attention_rows.ts), recomputing
 * only keys past them: per key s the forward reads 2D values (k once, v once) and the dq kernel
 * 3D (k twice, v once) where T fits. The dk/dv kernel keeps its key rows and each q, dOut row in
 * private arrays, reading 2D per query row, and gets twice the key rows per invocation to share
 * its recomputed scores. Private traffic is the next cost once loads are shared: every loop over
 * keys (forward, dq) or query rows (dk/dv) takes `unroll` of them per iteration, so each q/dOut
 * element and each accumulator is read and written once per 4 keys instead of once per key
 * (measured at the 3.4M bench shape, B=16 T=128 H=4 D=64, CPU time per kernel: forward 95 -> 62
 * ms, dq 115 -> 79, dk/dv 103 -> 55; the kernels that stored (B,H,T,T) probs took 104, 89, 67),
 * at no extra compile time. Consecutive invocations take the same row block of different
 * (batch, kv head) pairs, so the lanes of a SIMD batch (or a GPU warp) run loops of equal length.
 *
 * Determinism: each output is one invocation's fixed-order sum (over d for dots; over s for out
 * and dq; over the group's heads, then t, for dk and dv). Masked terms add an exact +-0, so a
 * row's bits do not depend on the other rows of its block (padding rows cannot leak).
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in a dispatch, even at
 * disjoint ranges, while several `read_write` bindings of it are allowed.
 *
 * @module
 */

import {
  attentionBackwardFlash,
  attentionForwardFlash,
  FLASH_CANDIDATES,
  FLASH_TILING,
  type FlashTiling,
} from "./attention_flash.ts";
import {
  attentionBackwardKvWgsl,
  attentionBackwardRowsWgsl,
  attentionForwardWgsl,
  UNROLL,
  WG,
} from "./attention_rows.ts";
import type { Tensor } from "../../backend/mod.ts";
import { f32bits, type GpuContext, grid1d } from "../context.ts";

/** Rows per invocation of the attention kernels. */
export interface AttentionTiling {
  /** Query rows per invocation of the forward and dq kernels. */
  rows: number;
  /** Key rows per invocation of the dk/dv kernel. */
  keys: number;
  /**
   * Keys (forward, dq) or query rows (dk/dv) per loop iteration; results are the same bits for
   * every value. @default UNROLL (4), fewer where the head dimension is large
   */
  unroll?: number;
}

/**
 * Tiling for software adapters (llvmpipe), where storage loads dominate: 4 query rows (or 4 key
 * rows) share each k/v (or q/dOut) row loaded; 8 gains little more and doubles private memory.
 */
export const ATTENTION_TILING_CPU: AttentionTiling = { rows: 4, keys: 4 };

/**
 * One row per thread: registers stay low, but it measured slower on an H200 than the
 * one-workgroup-per-row layout hardware GPUs used before the flash one; kept as a tested
 * alternative.
 */
export const ATTENTION_TILING_GPU: AttentionTiling = { rows: 1, keys: 1 };

/** Largest head dimension (private arrays hold rows * D floats twice per invocation). */
export const MAX_HEAD_DIM = 256;
/** Floats per private array, at most, where the head dimension allows (see {@link launch}). */
const PRIVATE_FLOATS = 128;

/** An attention layout: rows per invocation (software) or the flash tiles (hardware). */
export type AttentionLayout = AttentionTiling | FlashTiling;

/** An attention shape: batch, sequence, query heads, kv heads, head dimension. */
export type AttentionShape = [number, number, number, number, number];

/** The key of an attention shape in the tuner's table, e.g. `attention 8x256x9x3x64`. */
export function attentionShapeKey(shape: AttentionShape): string {
  return `attention ${shape.join("x")}`;
}

/** Parses {@link attentionShapeKey}'s key back into its shape. */
export function parseAttentionKey(key: string): AttentionShape {
  const match = /^attention (\d+)x(\d+)x(\d+)x(\d+)x(\d+)$/.exec(key);
  if (!match) throw new Error(`bad attention shape key "${key}"`);
  return match.slice(1).map(Number) as AttentionShape;
}

/** A flash tiling's name in the tuner's table, e.g. `flash_r64_k16`. */
export function flashName(t: FlashTiling): string {
  return `flash_r${t.rows}_k${t.keys}`;
}

/** The flash candidates the device can run (rows invocations per workgroup). */
export function flashCandidates(ctx: GpuContext): FlashTiling[] {
  const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupSizeX: x } = ctx.limits;
  return FLASH_CANDIDATES.filter((t) => t.rows <= inv && t.rows <= x);
}

/**
 * The layout for this context: rows per invocation with the software layouts (llvmpipe's default),
 * flash with the hardware ones (forced on any adapter by GpuContextOptions.layouts), its tiles the
 * tuner's choice for the shape where it has one, else {@link FLASH_TILING}.
 */
export function attentionTiling(ctx: GpuContext, shape?: AttentionShape): AttentionLayout {
  if (ctx.layouts === "software") return ATTENTION_TILING_CPU;
  const tuned = shape && ctx.tuner?.choose(ctx, attentionShapeKey(shape));
  return flashCandidates(ctx).find((t) => flashName(t) === tuned) ?? FLASH_TILING;
}

/** WGSL per kernel name (one name per distinct text: head dimension and rows are baked in). */
const generated = new Map<string, string>();

/** The three kernels of the rows-per-invocation layout. */
export type AttentionKernelKind = "Forward" | "BackwardRows" | "BackwardKv";

/**
 * Name and WGSL of one rows-per-invocation attention kernel for head dimension D and up to R rows
 * per invocation (the rows actually used are returned too: they shrink as D grows).
 */
export function attentionKernel(
  kind: AttentionKernelKind,
  D: number,
  R: number,
  unroll = UNROLL,
): { name: string; wgsl: string; rows: number } {
  // Private arrays are sized for the head dimension rounded up to a power of two (at least 32),
  // so nearby head dimensions share one pipeline; loops run to the real D.
  const cap = Math.max(32, 2 ** Math.ceil(Math.log2(D)));
  // llvmpipe's compile time grows steeply with private-array size (a 512-float array alone takes
  // about 8 s), so the rows per invocation shrink as D grows: R * cap <= PRIVATE_FLOATS.
  // The dk/dv kernel gets twice that: its recomputed scores cost private-array work per query row
  // that more key rows per invocation share.
  const floats = kind === "BackwardKv" ? 2 * PRIVATE_FLOATS : PRIVATE_FLOATS;
  const rows = Math.max(1, Math.min(R, Math.floor(floats / cap)));
  // The unrolled loops keep U q/dOut (dk/dv) or k (dq) rows in private arrays: U * cap <= 256.
  const U = Math.max(1, Math.min(unroll, Math.floor(2 * PRIVATE_FLOATS / cap)));
  const name = `attention${kind}_d${cap}_r${rows}_u${U}`;
  let wgsl = generated.get(name);
  if (!wgsl) {
    const make = kind === "Forward"
      ? attentionForwardWgsl
      : kind === "BackwardRows"
      ? attentionBackwardRowsWgsl
      : attentionBackwardKvWgsl;
    generated.set(name, wgsl = make(cap, rows, U));
  }
  return { name, wgsl, rows };
}

function launch(
  ctx: GpuContext,
  kind: AttentionKernelKind,
  tensors: Tensor[],
  shape: [number, number, number, number, number],
  maxRows: number,
  unroll?: number,
): void {
  const [B, T, H, Hkv, D] = shape;
  const { name, wgsl, rows: R } = attentionKernel(kind, D, maxRows, unroll);
  const rows = kind === "BackwardKv" ? T : T * (H / Hkv);
  const blocks = Math.ceil(rows / R);
  const maxPerDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const words = [B, T, H, Hkv, blocks, f32bits(1 / Math.sqrt(D)), D];
  ctx.launch(name, wgsl, tensors, words, grid1d(B * Hkv * blocks, WG, maxPerDim));
}

function checkShape(H: number, Hkv: number, D: number) {
  if (Hkv <= 0 || H % Hkv !== 0) {
    throw new Error(`attention: ${H} query heads do not split into ${Hkv} kv heads`);
  }
  if (D > MAX_HEAD_DIM) {
    throw new Error(`attention: head dimension ${D} exceeds the kernel's ${MAX_HEAD_DIM}`);
  }
}

/** Records the forward: out (B,T,H,D) and stats (B,H,T,2) from q, k, v. */
export function attentionForward(
  ctx: GpuContext,
  out: Tensor,
  stats: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
  tiling: AttentionLayout = attentionTiling(ctx, [B, T, H, Hkv, D]),
): void {
  if ("flash" in tiling) {
    return attentionForwardFlash(ctx, out, stats, q, k, v, [B, T, H, Hkv, D], tiling);
  }
  checkShape(H, Hkv, D);
  launch(ctx, "Forward", [out, stats, q, k, v], [B, T, H, Hkv, D], tiling.rows, tiling.unroll);
}

/** Records the backward: dq, dk, dv overwritten; rowDot (B,H,T) is scratch. */
export function attentionBackward(
  ctx: GpuContext,
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  rowDot: Tensor,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  stats: Tensor,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
  tiling: AttentionLayout = attentionTiling(ctx, [B, T, H, Hkv, D]),
): void {
  const shape: AttentionShape = [B, T, H, Hkv, D];
  if ("flash" in tiling) {
    const saved = { dOut, q, k, v, out, stats };
    return attentionBackwardFlash(ctx, { dq, dk, dv, rowDot }, saved, shape, tiling);
  }
  checkShape(H, Hkv, D);
  const { rows, keys, unroll } = tiling;
  launch(ctx, "BackwardRows", [dq, rowDot, dOut, q, k, v, stats], shape, rows, unroll);
  launch(ctx, "BackwardKv", [dk, dv, rowDot, stats, q, dOut, k, v], shape, keys, unroll);
}
