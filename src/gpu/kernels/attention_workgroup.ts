/**
 * The hardware-GPU layout of attention (see attention.ts for the software-adapter one).
 * Causal grouped-query attention in WGSL, forward and backward side by side; the semantics are
 * those of `src/cpu/attention.ts` (HF eager attention: kv head `floor(h / (H/Hkv))`, scores
 * scaled by 1/sqrt(D), max-subtracted f32 softmax, exact zeros above the diagonal).
 *
 * The forward and the first backward kernel run one workgroup per query row (b, h, t): the
 * row's scores live in the probs / dScores row itself (global memory, made visible to the
 * workgroup by `storageBarrier`), reductions over s are fixed-order shared-memory trees, and the
 * D outputs are fixed-order loops over s. dk and dv run one invocation per (b, s, kvHead, d),
 * looping over the group's heads then t, so no atomics are needed and every run gives the same
 * bits.
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in a dispatch, even at
 * disjoint ranges, while several `read_write` bindings of it are allowed.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, f32bits, type GpuContext, grid1d } from "../context.ts";

/** Workgroup size of the row kernels (a power of two for the tree reductions). */
const ROW_WG = 64;
/** Largest head dimension the row kernels hold in shared memory. */
const MAX_HEAD_DIM = 256;
/** Workgroup size of the dk/dv kernel. */
const KV_WG = 64;

const PARAMS = /* wgsl */ `
struct Params { B: u32, T: u32, H: u32, Hkv: u32, D: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
const WG: u32 = ${ROW_WG}u;
const MAX_D: u32 = ${MAX_HEAD_DIM}u;`;

/**
 * Forward, one workgroup per query row: workgroup (t, b*H + h).
 * q, out: (B,T,H,D); k, v: (B,T,Hkv,D); probs: (B,H,T,T)
 */
export const ATTENTION_FORWARD_WGSL = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read_write> k: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
var<workgroup> qRow: array<f32, MAX_D>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let bh = wid.y;
  let b = bh / u.H;
  let kvh = (bh % u.H) / (u.H / u.Hkv);
  let T = u.T;
  let D = u.D;
  let qBase = (b * T + t) * u.H * D + (bh % u.H) * D;
  let pBase = (bh * T + t) * T;
  for (var d = lid; d < D; d += WG) { qRow[d] = q[qBase + d]; }
  workgroupBarrier();

  // Scores of this invocation's keys, kept in the probs row; then the row max by a fixed tree.
  var localMax = ${F32_LOWEST};
  for (var s = lid; s <= t; s += WG) {
    let kBase = ((b * T + s) * u.Hkv + kvh) * D;
    var dot = 0.0;
    for (var d = 0u; d < D; d++) { dot += qRow[d] * k[kBase + d]; }
    let score = dot * u.scale;
    probs[pBase + s] = score;
    localMax = max(localMax, score);
  }
  partial[lid] = localMax;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] = max(partial[lid], partial[lid + stride]); }
    workgroupBarrier();
  }
  let rowMax = partial[0];
  workgroupBarrier();

  var localSum = 0.0;
  for (var s = lid; s <= t; s += WG) {
    let e = exp(probs[pBase + s] - rowMax);
    probs[pBase + s] = e;
    localSum += e;
  }
  partial[lid] = localSum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let rowSum = partial[0];
  for (var s = lid; s < T; s += WG) {
    probs[pBase + s] = select(0.0, probs[pBase + s] / rowSum, s <= t);
  }
  storageBarrier();

  // out[t, d] = sum over s <= t, in order, of probs[t, s] v[s, d].
  for (var d = lid; d < D; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s <= t; s++) {
      acc += probs[pBase + s] * v[((b * T + s) * u.Hkv + kvh) * D + d];
    }
    out[qBase + d] = acc;
  }
}
`;

/**
 * Backward, part 1, one workgroup per query row (t, b*H + h): dScores (scale folded in) and dq.
 * dq, dOut, q: (B,T,H,D); k, v: (B,T,Hkv,D); probs, dScores: (B,H,T,T)
 */
export const ATTENTION_BACKWARD_ROWS_WGSL = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read_write> dq: array<f32>;
@group(0) @binding(2) var<storage, read_write> dScores: array<f32>;
@group(0) @binding(3) var<storage, read_write> dOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> k: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> probs: array<f32>;
var<workgroup> dOutRow: array<f32, MAX_D>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let bh = wid.y;
  let b = bh / u.H;
  let kvh = (bh % u.H) / (u.H / u.Hkv);
  let T = u.T;
  let D = u.D;
  let qBase = (b * T + t) * u.H * D + (bh % u.H) * D;
  let pBase = (bh * T + t) * T;
  for (var d = lid; d < D; d += WG) { dOutRow[d] = dOut[qBase + d]; }
  workgroupBarrier();

  // dProbs[s] = dOut[t] . v[s], kept in the dScores row; rowDot = sum_s probs * dProbs.
  var localDot = 0.0;
  for (var s = lid; s <= t; s += WG) {
    let vBase = ((b * T + s) * u.Hkv + kvh) * D;
    var dot = 0.0;
    for (var d = 0u; d < D; d++) { dot += dOutRow[d] * v[vBase + d]; }
    dScores[pBase + s] = dot;
    localDot += probs[pBase + s] * dot;
  }
  partial[lid] = localDot;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let rowDot = partial[0];
  for (var s = lid; s < T; s += WG) {
    let p = pBase + s;
    dScores[p] = select(0.0, probs[p] * (dScores[p] - rowDot) * u.scale, s <= t);
  }
  storageBarrier();

  // dq[t, d] = sum over s <= t, in order, of dScores[t, s] k[s, d].
  for (var d = lid; d < D; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s <= t; s++) {
      acc += dScores[pBase + s] * k[((b * T + s) * u.Hkv + kvh) * D + d];
    }
    dq[qBase + d] = acc;
  }
}
`;

/**
 * Backward, part 2, one invocation per element (b, s, kvh, d) of dk and dv, summing over the
 * group's heads, then t >= s, in that fixed order.
 * dk, dv: (B,T,Hkv,D); q, dOut: (B,T,H,D); dScores, probs: (B,H,T,T)
 */
export const ATTENTION_BACKWARD_KV_WGSL = /* wgsl */ `
struct Params { B: u32, T: u32, H: u32, Hkv: u32, D: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;
@group(0) @binding(3) var<storage, read_write> dScores: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> dOut: array<f32>;
const WG: u32 = ${KV_WG}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  let T = u.T;
  let D = u.D;
  if (i >= u.B * T * u.Hkv * D) { return; }
  let d = i % D;
  let kvh = (i / D) % u.Hkv;
  let s = (i / (D * u.Hkv)) % T;
  let b = i / (D * u.Hkv * T);
  let group = u.H / u.Hkv;
  var dkAcc = 0.0;
  var dvAcc = 0.0;
  for (var h = kvh * group; h < (kvh + 1u) * group; h++) {
    for (var t = s; t < T; t++) {
      let p = ((b * u.H + h) * T + t) * T + s;
      let qi = ((b * T + t) * u.H + h) * D + d;
      dkAcc += dScores[p] * q[qi];
      dvAcc += probs[p] * dOut[qi];
    }
  }
  dk[i] = dkAcc;
  dv[i] = dvAcc;
}
`;

function checkShape(ctx: GpuContext, B: number, T: number, H: number, Hkv: number, D: number) {
  if (Hkv <= 0 || H % Hkv !== 0) {
    throw new Error(`attention: ${H} query heads do not split into ${Hkv} kv heads`);
  }
  if (D > MAX_HEAD_DIM) {
    throw new Error(`attention: head dimension ${D} exceeds the kernel's ${MAX_HEAD_DIM}`);
  }
  const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (T > maxGroups || B * H > maxGroups) {
    throw new Error(`attention: T=${T} or B*H=${B * H} exceeds ${maxGroups} workgroups`);
  }
}

const params = (B: number, T: number, H: number, Hkv: number, D: number) => [
  B,
  T,
  H,
  Hkv,
  D,
  f32bits(1 / Math.sqrt(D)),
];

/** Records the forward: out (B,T,H,D) and probs (B,H,T,T) from q, k, v. */
export function attentionForwardWorkgroup(
  ctx: GpuContext,
  out: Tensor,
  probs: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  checkShape(ctx, B, T, H, Hkv, D);
  ctx.launch(
    "attentionWorkgroupForward",
    ATTENTION_FORWARD_WGSL,
    [out, probs, q, k, v],
    params(B, T, H, Hkv, D),
    [
      T,
      B * H,
    ],
  );
}

/** Records the backward: dq, dk, dv overwritten; dScores (B,H,T,T) is scratch. */
export function attentionBackwardWorkgroup(
  ctx: GpuContext,
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  dScores: Tensor,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  probs: Tensor,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  checkShape(ctx, B, T, H, Hkv, D);
  const words = params(B, T, H, Hkv, D);
  ctx.launch(
    "attentionWorkgroupBackwardRows",
    ATTENTION_BACKWARD_ROWS_WGSL,
    [dq, dScores, dOut, k, v, probs],
    words,
    [T, B * H],
  );
  ctx.launch(
    "attentionWorkgroupBackwardKv",
    ATTENTION_BACKWARD_KV_WGSL,
    [dk, dv, dScores, probs, q, dOut],
    words,
    grid1d(B * T * Hkv * D, KV_WG, ctx.limits.maxComputeWorkgroupsPerDimension),
  );
}
