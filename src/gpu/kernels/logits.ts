/**
 * The log-prob head in WGSL: row log-sum-exp and target log-probs of a chunk of logits, their
 * in-place gradient, and the per-sequence sums. Semantics as in `src/cpu/logits.ts`; a target
 * < 0 marks a prompt or padding row.
 *
 * The row statistics use one workgroup per row: each invocation keeps an online (max, sum of
 * exp(x - max)) pair over a strided slice of the row, read once, and the pairs are merged by a
 * fixed shared-memory tree, so any V works and every run gives the same bits.
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in a dispatch, even at
 * disjoint ranges, while several `read_write` bindings of it are allowed.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, type GpuContext, grid1d } from "../context.ts";

/** Workgroup size of the row reduction (a power of two for the tree). */
const ROW_WG = 256;
/** Workgroup size of the elementwise kernels. */
const FLAT_WG = 256;

/**
 * Forward, one workgroup per row r (folded into two dimensions for many rows).
 * logits: (R,V); targets (i32), lse, tokenLogp: (R)
 */
export const LOGITS_FORWARD_WGSL = /* wgsl */ `
struct Params { R: u32, V: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokenLogp: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> targets: array<i32>;
const WG: u32 = ${ROW_WG}u;
const LOWEST: f32 = ${F32_LOWEST};
var<workgroup> partialMax: array<f32, WG>;
var<workgroup> partialSum: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= u.R) { return; }
  let base = r * u.V;
  // Online softmax normaliser over this invocation's slice: sum = sum exp(x - m).
  var m = LOWEST;
  var sum = 0.0;
  for (var c = lid; c < u.V; c += WG) {
    let x = logits[base + c];
    if (x > m) {
      sum = sum * exp(m - x) + 1.0;
      m = x;
    } else {
      sum += exp(x - m);
    }
  }
  partialMax[lid] = m;
  partialSum[lid] = sum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let m1 = partialMax[lid];
      let m2 = partialMax[lid + stride];
      let mm = max(m1, m2);
      partialSum[lid] = partialSum[lid] * exp(m1 - mm) + partialSum[lid + stride] * exp(m2 - mm);
      partialMax[lid] = mm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let rowLse = partialMax[0] + log(partialSum[0]);
    lse[r] = rowLse;
    let targetId = targets[r];
    var logp = 0.0;
    if (targetId >= 0) { logp = logits[base + u32(targetId)] - rowLse; }
    tokenLogp[r] = logp;
  }
}
`;

/**
 * Backward, in place, one invocation per logit: logits (R,V) becomes
 * rowGrad[r] * (onehot(target) - exp(logits - lse[r])), or 0 where targets[r] < 0.
 * logits: (R,V); lse, targets (i32), rowGrad: (R)
 */
export const LOGITS_BACKWARD_WGSL = /* wgsl */ `
struct Params { R: u32, V: u32, n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> targets: array<i32>;
@group(0) @binding(4) var<storage, read_write> rowGrad: array<f32>;
const WG: u32 = ${FLAT_WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= u.n) { return; }
  let r = i / u.V;
  let c = i - r * u.V;
  let targetId = targets[r];
  var grad = 0.0;
  if (targetId >= 0) {
    let onehot = select(0.0, 1.0, c == u32(targetId));
    grad = rowGrad[r] * (onehot - exp(logits[i] - lse[r]));
  }
  logits[i] = grad;
}
`;

/**
 * seqLogps[s] = sum over t, in order, of tokenLogp[s*T + t]; one invocation per sequence.
 * tokenLogp: (S,T); seqLogps: (S)
 */
export const SEQUENCE_SUM_WGSL = /* wgsl */ `
struct Params { S: u32, T: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> seqLogps: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokenLogp: array<f32>;
const WG: u32 = ${FLAT_WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let s = gid.x + gid.y * nwg.x * WG;
  if (s >= u.S) { return; }
  var sum = 0.0;
  for (var t = 0u; t < u.T; t++) { sum += tokenLogp[s * u.T + t]; }
  seqLogps[s] = sum;
}
`;

/**
 * rowGrad[s*T + t] = seqGrad[s], the backward of the sequence sum.
 * seqGrad: (S); rowGrad: (S,T)
 */
export const BROADCAST_SEQUENCE_WGSL = /* wgsl */ `
struct Params { S: u32, T: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> rowGrad: array<f32>;
@group(0) @binding(2) var<storage, read_write> seqGrad: array<f32>;
const WG: u32 = ${FLAT_WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= u.S * u.T) { return; }
  rowGrad[i] = seqGrad[i / u.T];
}
`;

const maxGroups = (ctx: GpuContext) => ctx.limits.maxComputeWorkgroupsPerDimension;

/** Records the row statistics: lse (R) and tokenLogp (R) of logits (R,V) at targets (R). */
export function logitsForward(
  ctx: GpuContext,
  lse: Tensor,
  tokenLogp: Tensor,
  logits: Tensor,
  targets: Tensor,
  R: number,
  V: number,
): void {
  ctx.launch(
    "logitsForward",
    LOGITS_FORWARD_WGSL,
    [lse, tokenLogp, logits, targets],
    [R, V],
    grid1d(R, 1, maxGroups(ctx)),
  );
}

/** Records the in-place gradient of logits (R,V) given rowGrad (R) = d(loss)/d(tokenLogp). */
export function logitsBackward(
  ctx: GpuContext,
  logits: Tensor,
  lse: Tensor,
  targets: Tensor,
  rowGrad: Tensor,
  R: number,
  V: number,
): void {
  const n = R * V;
  if (n > 0xffffffff) throw new Error(`logitsBackward: ${R}x${V} logits exceed u32 indexing`);
  ctx.launch(
    "logitsBackward",
    LOGITS_BACKWARD_WGSL,
    [logits, lse, targets, rowGrad],
    [R, V, n],
    grid1d(n, FLAT_WG, maxGroups(ctx)),
  );
}

/** Records seqLogps (S) = per-sequence sums of tokenLogp (S,T). */
export function sequenceSum(
  ctx: GpuContext,
  seqLogps: Tensor,
  tokenLogp: Tensor,
  S: number,
  T: number,
): void {
  ctx.launch(
    "sequenceSum",
    SEQUENCE_SUM_WGSL,
    [seqLogps, tokenLogp],
    [S, T],
    grid1d(S, FLAT_WG, maxGroups(ctx)),
  );
}

/** Records rowGrad (S,T) = seqGrad[s] broadcast over each sequence's tokens. */
export function broadcastSequence(
  ctx: GpuContext,
  rowGrad: Tensor,
  seqGrad: Tensor,
  S: number,
  T: number,
): void {
  ctx.launch(
    "broadcastSequence",
    BROADCAST_SEQUENCE_WGSL,
    [rowGrad, seqGrad],
    [S, T],
    grid1d(S * T, FLAT_WG, maxGroups(ctx)),
  );
}
