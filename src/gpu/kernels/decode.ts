/**
 * WGSL decode kernels: one new token per row against a KV cache (rotary embedding at each row's
 * own position, cache append, attention of one query over the cache); the sampling step is in
 * sample.ts. The semantics are those of src/cpu/decode.ts.
 *
 * Positions and the per-row sampling state live in device tensors, so the uniforms of every
 * dispatch stay the same from step to step: a whole generation reuses one set of bind groups and
 * needs no readback until the end.
 *
 * Every storage binding is declared `read_write`, inputs included: wgpu (Deno) refuses a dispatch
 * that binds one arena buffer as both `read` and `read_write`, even at disjoint ranges.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, f32bits, type GpuContext, grid1d } from "../context.ts";
import { assertDistinct, LINEAR_INDEX } from "./elementwise.ts";

// x: (rows, H, D) in place; cos, sin: (L, D/2); positions: (rows) i32
export const ROPE_AT_WGSL = `struct Params { rows: u32, H: u32, D: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cosTable: array<f32>;
@group(0) @binding(3) var<storage, read_write> sinTable: array<f32>;
@group(0) @binding(4) var<storage, read_write> positions: array<i32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = ${LINEAR_INDEX};
  let halfD = u.D / 2u;
  if (p >= u.rows * u.H * halfD) { return; }
  let head = p / halfD;
  let i = p - head * halfD;
  let t = u32(positions[head / u.H]) * halfD + i;
  let c = cosTable[t];
  let s = sinTable[t];
  let lo = head * u.D + i;
  let x1 = x[lo];
  let x2 = x[lo + halfD];
  x[lo] = x1 * c - x2 * s;
  x[lo + halfD] = x2 * c + x1 * s;
}`;

// kCache, vCache: (B, L, Hkv*D); k, v: (B, Hkv*D); positions: (B) i32
export const KV_CACHE_WRITE_WGSL = `struct Params { B: u32, L: u32, W: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(2) var<storage, read_write> vCache: array<f32>;
@group(0) @binding(3) var<storage, read_write> k: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> positions: array<i32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.B * u.W) { return; }
  let b = i / u.W;
  let pos = positions[b];
  if (pos < 0 || u32(pos) >= u.L) { return; }
  let dst = (b * u.L + u32(pos)) * u.W + (i - b * u.W);
  kCache[dst] = k[i];
  vCache[dst] = v[i];
}`;

/**
 * One invocation per (b, h), the whole row in registers: an online softmax over the cache
 * positions 0..positions[b] in ascending order (running max, rescaled sum and output), with the
 * head read as D/4 vec4 loads when D % 4 = 0. On llvmpipe, where every buffer load costs a loop
 * over lanes, this reads each cached element once and is several times faster than a workgroup
 * per head with tree reductions; the WGSL is generated per head size so the loops over D unroll.
 * The final probabilities p_s = exp(score_s - max) / sum are written to `scores`.
 * q, out: (B,H,D); kCache, vCache: (B,L,Hkv,D); scores: (B,H,L); positions: (B) i32
 */
export function decodeAttentionWgsl(D: number): string {
  const vec = D % 4 === 0;
  const W = vec ? D / 4 : D;
  const T = vec ? "vec4<f32>" : "f32";
  const dot = vec ? "dot(qh[j], kCache[kBase + j])" : "qh[j] * kCache[kBase + j]";
  return `struct Params { BH: u32, L: u32, H: u32, Hkv: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> out: array<${T}>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<${T}>;
@group(0) @binding(4) var<storage, read_write> kCache: array<${T}>;
@group(0) @binding(5) var<storage, read_write> vCache: array<${T}>;
@group(0) @binding(6) var<storage, read_write> positions: array<i32>;
const W: u32 = ${W}u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let bh = gid.x;
  if (bh >= u.BH) { return; }
  let b = bh / u.H;
  let kvh = (bh % u.H) / (u.H / u.Hkv);
  let len = u32(clamp(positions[b] + 1, 0, i32(u.L)));
  let sBase = bh * u.L;
  var qh: array<${T}, W>;
  var acc: array<${T}, W>;
  for (var j = 0u; j < W; j++) { qh[j] = q[bh * W + j]; acc[j] = ${T}(0.0); }
  var m = ${F32_LOWEST};
  var sum = 0.0;
  for (var s = 0u; s < len; s++) {
    let kBase = ((b * u.L + s) * u.Hkv + kvh) * W;
    var dotSum = 0.0;
    for (var j = 0u; j < W; j++) { dotSum += ${dot}; }
    let score = dotSum * u.scale;
    scores[sBase + s] = score;
    let mNew = max(m, score);
    let rescale = exp(m - mNew);
    let p = exp(score - mNew);
    sum = sum * rescale + p;
    for (var j = 0u; j < W; j++) { acc[j] = acc[j] * rescale + p * vCache[kBase + j]; }
    m = mNew;
  }
  for (var j = 0u; j < W; j++) { out[bh * W + j] = acc[j] / sum; }
  for (var s = 0u; s < len; s++) { scores[sBase + s] = exp(scores[sBase + s] - m) / sum; }
}`;
}

/** Records x (rows,H,D) rotated in place at positions (rows) by cos, sin (L, D/2). */
export function ropeAt(
  ctx: GpuContext,
  x: Tensor,
  cos: Tensor,
  sin: Tensor,
  positions: Tensor,
  rows: number,
  H: number,
  D: number,
): void {
  if (D % 2 !== 0) throw new Error(`ropeAt: head dimension ${D} must be even`);
  assertDistinct("ropeAt", [x, cos, sin, positions]);
  ctx.launch(
    "decode_rope_at",
    ROPE_AT_WGSL,
    [x, cos, sin, positions],
    [rows, H, D],
    grid1d(rows * H * (D / 2), 256),
  );
}

/** Records the append of k, v (B,Hkv,D) at each row's position of kCache, vCache (B,L,Hkv,D). */
export function kvCacheWrite(
  ctx: GpuContext,
  kCache: Tensor,
  vCache: Tensor,
  k: Tensor,
  v: Tensor,
  positions: Tensor,
  B: number,
  L: number,
  Hkv: number,
  D: number,
): void {
  assertDistinct("kvCacheWrite", [kCache, vCache, k, v, positions]);
  ctx.launch(
    "decode_kv_cache_write",
    KV_CACHE_WRITE_WGSL,
    [kCache, vCache, k, v, positions],
    [B, L, Hkv * D],
    grid1d(B * Hkv * D, 256),
  );
}

/** Records out (B,H,D) = one-query attention over the cache; scores (B,H,L) is scratch. */
export function decodeAttention(
  ctx: GpuContext,
  out: Tensor,
  scores: Tensor,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  positions: Tensor,
  B: number,
  L: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  if (H % Hkv !== 0) throw new Error(`decodeAttention: ${H} heads do not split into ${Hkv}`);
  assertDistinct("decodeAttention", [out, scores, q, kCache, vCache, positions]);
  ctx.launch(
    `decode_attention_d${D}`,
    decodeAttentionWgsl(D),
    [out, scores, q, kCache, vCache, positions],
    [B * H, L, H, Hkv, f32bits(1 / Math.sqrt(D))],
    [Math.ceil((B * H) / 64)],
  );
}
