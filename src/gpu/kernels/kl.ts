/**
 * Row-wise full-vocabulary KL(softmax(policy) ‖ softmax(reference)) of two chunks of logits in
 * WGSL, as `src/cpu/kl.ts` computes it; a target < 0 marks a row that does not count (KL 0).
 *
 * One workgroup per row (64 or 256 invocations, see {@link SMALL_VOCAB}); both rows are read once. With a = policy logits, b = reference logits,
 * KL = sum_v p_v (a_v - b_v) + lse(b) - lse(a), since log p - log q = (a - b) - lse(a) + lse(b)
 * and sum_v p_v = 1. Each invocation keeps, over its strided slice of the row, an online
 * (max mA, sA = sum exp(a - mA), wA = sum exp(a - mA) (a - b)) triple for the policy and an
 * online (mB, sB) pair for the reference; a fixed shared-memory tree merges them (rescaling by
 * exp(m - max) as online softmax does), so any V works and every run gives the same bits. The row
 * is then KL = wA / sA + (mB - mA) + (log sB - log sA): for identical rows every one of these
 * terms is exactly 0, so a model against itself gives KL 0 exactly.
 *
 * Inputs are declared `read_write` although never written (INPUT_ACCESS in elementwise.ts: wgpu
 * rejects `read` and `read_write` ranges of one arena buffer in one dispatch).
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, type GpuContext, grid1d } from "../context.ts";
import { INPUT_ACCESS } from "./elementwise.ts";

/**
 * Vocabularies up to this size use workgroups of 64, larger ones 256: on llvmpipe a 256-wide
 * tree over a 232-token row costs 4.7x the 64-wide one (measured), while long vocabularies want
 * the wider workgroup on real GPUs. Each size is its own pipeline, so results stay reproducible.
 */
export const SMALL_VOCAB = 8192;

/**
 * One workgroup r per row (folded into two dimensions for many rows); `workgroupSize` is a power
 * of two for the tree.
 * policyLogits, referenceLogits: (R,V); targets (i32), kl: (R)
 */
export const klRowsWgsl = (workgroupSize: number): string => /* wgsl */ `
struct Params { R: u32, V: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> kl: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> policyLogits: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> referenceLogits: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> targets: array<i32>;
const WG: u32 = ${workgroupSize}u;
const LOWEST: f32 = ${F32_LOWEST};
var<workgroup> maxA: array<f32, WG>;
var<workgroup> sumA: array<f32, WG>;
var<workgroup> dotA: array<f32, WG>;
var<workgroup> maxB: array<f32, WG>;
var<workgroup> sumB: array<f32, WG>;
var<workgroup> rowTarget: i32;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= u.R) { return; }
  // The mask is read once into workgroup memory so that the early exit stays uniform control
  // flow (the reduction's barriers follow).
  if (lid == 0u) { rowTarget = targets[r]; }
  if (workgroupUniformLoad(&rowTarget) < 0) {
    if (lid == 0u) { kl[r] = 0.0; }
    return;
  }
  let base = r * u.V;
  var mA = LOWEST;
  var sA = 0.0;
  var wA = 0.0;
  var mB = LOWEST;
  var sB = 0.0;
  for (var c = lid; c < u.V; c += WG) {
    let a = policyLogits[base + c];
    let b = referenceLogits[base + c];
    if (a > mA) {
      let scale = exp(mA - a);
      sA = sA * scale + 1.0;
      wA = wA * scale + (a - b);
      mA = a;
    } else {
      let e = exp(a - mA);
      sA += e;
      wA += e * (a - b);
    }
    if (b > mB) {
      sB = sB * exp(mB - b) + 1.0;
      mB = b;
    } else {
      sB += exp(b - mB);
    }
  }
  maxA[lid] = mA;
  sumA[lid] = sA;
  dotA[lid] = wA;
  maxB[lid] = mB;
  sumB[lid] = sB;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let a1 = maxA[lid];
      let a2 = maxA[lid + stride];
      let am = max(a1, a2);
      let s1 = exp(a1 - am);
      let s2 = exp(a2 - am);
      sumA[lid] = sumA[lid] * s1 + sumA[lid + stride] * s2;
      dotA[lid] = dotA[lid] * s1 + dotA[lid + stride] * s2;
      maxA[lid] = am;
      let b1 = maxB[lid];
      let b2 = maxB[lid + stride];
      let bm = max(b1, b2);
      sumB[lid] = sumB[lid] * exp(b1 - bm) + sumB[lid + stride] * exp(b2 - bm);
      maxB[lid] = bm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    kl[r] = dotA[0] / sumA[0] + (maxB[0] - maxA[0]) + (log(sumB[0]) - log(sumA[0]));
  }
}
`;

/** The kernel for vocabularies up to {@link SMALL_VOCAB}. */
export const KL_ROWS_SMALL_WGSL = klRowsWgsl(64);
/** The kernel for larger vocabularies. */
export const KL_ROWS_WGSL = klRowsWgsl(256);

/**
 * Records kl (R) = KL(softmax(policyLogits[r]) ‖ softmax(referenceLogits[r])) of logits (R,V),
 * 0 where targets (R) < 0.
 */
export function klRows(
  ctx: GpuContext,
  kl: Tensor,
  policyLogits: Tensor,
  referenceLogits: Tensor,
  targets: Tensor,
  R: number,
  V: number,
): void {
  if (R * V > 0xffffffff) throw new Error(`klRows: ${R}x${V} logits exceed u32 indexing`);
  const small = V <= SMALL_VOCAB;
  ctx.launch(
    small ? "klRowsSmall" : "klRows",
    small ? KL_ROWS_SMALL_WGSL : KL_ROWS_WGSL,
    [kl, policyLogits, referenceLogits, targets],
    [R, V],
    grid1d(R, 1, ctx.limits.maxComputeWorkgroupsPerDimension),
  );
}
