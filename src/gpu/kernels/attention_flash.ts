/**
 * The hardware-GPU layout of attention (see attention.ts for the software-adapter one), in the
 * style of FlashAttention-2: no (T, T) matrix anywhere. Semantics as `src/cpu/attention.ts` (HF
 * eager attention: kv head `floor(h / (H/Hkv))`, scores scaled by 1/sqrt(D), causal mask).
 *
 * Forward: a workgroup takes `rows` query rows of one (b, kv head), numbered `qi = t * G + g`
 * (G = H/Hkv, so the group's heads share each key tile), one row per invocation; key/value tiles
 * of `keys` rows are staged in workgroup memory. Each row runs the online softmax one key at a
 * time (Milakov and Gimelshein): a larger score rescales the running sum and output by
 * exp(old max - new max). It saves per row the final max and sum (stats, (B,H,T,2)).
 * Backward: the dq kernel (same grid) recomputes each probability as exp(score - max) / sum,
 * rowDot = dOut . out (FA-2's D), and dScores = probs * (dOut . v - rowDot) / sqrt(D); the dk/dv
 * kernel gives an invocation one key row and stages query/dOut tiles of `keys` rows (plus their
 * stats) in workgroup memory, summing over the group's heads, then t ascending.
 *
 * Determinism: every output is one invocation's sum in a fixed order (keys ascending for out and
 * dq; heads, then queries ascending for dk and dv), and the tiles only stage what each invocation
 * reads, so every tile choice gives the same bits. No atomics.
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in a dispatch.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, f32bits, type GpuContext } from "../context.ts";

/** Tile sizes of the flash layout: query (or key) rows per workgroup, staged rows per tile. */
export interface FlashTiling {
  /** Marks the flash layout. */
  flash: true;
  /** Invocations per workgroup: query rows (forward, dq) or key rows (dk/dv). */
  rows: number;
  /** Rows staged per tile in workgroup memory (capped so a tile fits 8 KiB per operand). */
  keys: number;
}

/** The built-in hardware tiling. */
export const FLASH_TILING: FlashTiling = { flash: true, rows: 64, keys: 16 };

/** Tiling candidates (all give the same bits; the tests check it). */
export const FLASH_CANDIDATES: readonly FlashTiling[] = [
  FLASH_TILING,
  { flash: true, rows: 32, keys: 8 },
  { flash: true, rows: 64, keys: 32 },
];

/** Largest head dimension. */
export const FLASH_MAX_HEAD_DIM = 256;

/** The three kernels of the flash layout. */
export type FlashKernelKind = "Forward" | "BackwardQ" | "BackwardKv";

const HEADER = (rows: number, keys: number, cap: number, bindings: string[]) => /* wgsl */ `
struct Params { B: u32, T: u32, H: u32, Hkv: u32, D: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
${
  bindings.map((b, i) => `@group(0) @binding(${i + 1}) var<storage, read_write> ${b}: array<f32>;`)
    .join("\n")
}
const BR: u32 = ${rows}u;
const BC: u32 = ${keys}u;
const CAP: u32 = ${cap}u;

@compute @workgroup_size(BR)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = u.T;
  let H = u.H;
  let Hkv = u.Hkv;
  let D = u.D;
  let G = H / Hkv;
  let b = wid.y / Hkv;
  let kvh = wid.y % Hkv;
  let first = wid.x * BR;`;

// Query rows of the block (uniform: last, sEnd) and this invocation's row.
const QUERY_ROW = /* wgsl */ `
  let last = min(first + BR, T * G) - 1u;
  let sEnd = last / G + 1u;
  let qi = min(first + lid, last);
  let ok = first + lid <= last;
  let t = qi / G;
  let h = kvh * G + qi % G;
  let qb = ((b * T + t) * H + h) * D;
  let row = (b * H + h) * T + t;`;

// Stages keys/values s0..s0+n of (b, kvh) into kT, vT.
const STAGE_KV = /* wgsl */ `
    let n = min(BC, sEnd - s0);
    workgroupBarrier();
    for (var i = lid; i < n * D; i += BR) {
      let j = i / D;
      let d = i % D;
      let g = ((b * T + s0 + j) * Hkv + kvh) * D + d;
      kT[j * CAP + d] = k[g];
      vT[j * CAP + d] = v[g];
    }
    workgroupBarrier();`;

function forwardWgsl(rows: number, keys: number, cap: number): string {
  return `${HEADER(rows, keys, cap, ["out", "stats", "q", "k", "v"])}
${QUERY_ROW}
  var qv: array<f32, CAP>;
  var acc: array<f32, CAP>;
  for (var d = 0u; d < D; d++) { qv[d] = q[qb + d]; }
  var m = ${F32_LOWEST};
  var l = 0.0;
  for (var s0 = 0u; s0 < sEnd; s0 += BC) {
${STAGE_KV}
    for (var j = 0u; j < n; j++) {
      if (s0 + j > t) { break; }
      var dot = 0.0;
      for (var d = 0u; d < D; d++) { dot += qv[d] * kT[j * CAP + d]; }
      let x = dot * u.scale;
      if (x > m) {
        let c = exp(m - x);
        l *= c;
        for (var d = 0u; d < D; d++) { acc[d] *= c; }
        m = x;
      }
      let e = exp(x - m);
      l += e;
      for (var d = 0u; d < D; d++) { acc[d] += e * vT[j * CAP + d]; }
    }
  }
  if (ok) {
    for (var d = 0u; d < D; d++) { out[qb + d] = acc[d] / l; }
    stats[row * 2u] = m;
    stats[row * 2u + 1u] = l;
  }
}
var<workgroup> kT: array<f32, ${keys * cap}>;
var<workgroup> vT: array<f32, ${keys * cap}>;
`;
}

function backwardQWgsl(rows: number, keys: number, cap: number): string {
  return `${HEADER(rows, keys, cap, ["dq", "rowDot", "dOut", "q", "k", "v", "out", "stats"])}
${QUERY_ROW}
  var qv: array<f32, CAP>;
  var go: array<f32, CAP>;
  var acc: array<f32, CAP>;
  var rd = 0.0;
  for (var d = 0u; d < D; d++) {
    qv[d] = q[qb + d];
    go[d] = dOut[qb + d];
    rd += go[d] * out[qb + d];
  }
  let m = stats[row * 2u];
  let l = stats[row * 2u + 1u];
  for (var s0 = 0u; s0 < sEnd; s0 += BC) {
${STAGE_KV}
    for (var j = 0u; j < n; j++) {
      if (s0 + j > t) { break; }
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        dot += qv[d] * kT[j * CAP + d];
        dp += go[d] * vT[j * CAP + d];
      }
      let p = exp(dot * u.scale - m) / l;
      let ds = p * (dp - rd) * u.scale;
      for (var d = 0u; d < D; d++) { acc[d] += ds * kT[j * CAP + d]; }
    }
  }
  if (ok) {
    for (var d = 0u; d < D; d++) { dq[qb + d] = acc[d]; }
    rowDot[row] = rd;
  }
}
var<workgroup> kT: array<f32, ${keys * cap}>;
var<workgroup> vT: array<f32, ${keys * cap}>;
`;
}

function backwardKvWgsl(rows: number, keys: number, cap: number): string {
  return `${HEADER(rows, keys, cap, ["dk", "dv", "rowDot", "stats", "q", "dOut", "k", "v"])}
  let s = min(first + lid, T - 1u);
  let ok = first + lid < T;
  let kb = ((b * T + s) * Hkv + kvh) * D;
  var kr: array<f32, CAP>;
  var vr: array<f32, CAP>;
  var gk: array<f32, CAP>;
  var gv: array<f32, CAP>;
  for (var d = 0u; d < D; d++) {
    kr[d] = k[kb + d];
    vr[d] = v[kb + d];
  }
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t0 = first; t0 < T; t0 += BC) {
      let n = min(BC, T - t0);
      workgroupBarrier();
      for (var i = lid; i < n * D; i += BR) {
        let j = i / D;
        let d = i % D;
        let g = ((b * T + t0 + j) * H + h) * D + d;
        qT[j * CAP + d] = q[g];
        oT[j * CAP + d] = dOut[g];
      }
      for (var j = lid; j < n; j += BR) {
        let r = (b * H + h) * T + t0 + j;
        mT[j] = stats[r * 2u];
        lT[j] = stats[r * 2u + 1u];
        rT[j] = rowDot[r];
      }
      workgroupBarrier();
      for (var j = 0u; j < n; j++) {
        if (t0 + j < s) { continue; }
        var dot = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) {
          dot += qT[j * CAP + d] * kr[d];
          dp += oT[j * CAP + d] * vr[d];
        }
        let p = exp(dot * u.scale - mT[j]) / lT[j];
        let ds = p * (dp - rT[j]) * u.scale;
        for (var d = 0u; d < D; d++) {
          gk[d] += ds * qT[j * CAP + d];
          gv[d] += p * oT[j * CAP + d];
        }
      }
    }
  }
  if (ok) {
    for (var d = 0u; d < D; d++) {
      dk[kb + d] = gk[d];
      dv[kb + d] = gv[d];
    }
  }
}
var<workgroup> qT: array<f32, ${keys * cap}>;
var<workgroup> oT: array<f32, ${keys * cap}>;
var<workgroup> mT: array<f32, ${keys}>;
var<workgroup> lT: array<f32, ${keys}>;
var<workgroup> rT: array<f32, ${keys}>;
`;
}

const generated = new Map<string, string>();

/**
 * Name and WGSL of one flash kernel for head dimension D; the staged rows shrink as D grows so
 * one operand's tile stays within 1,024 floats (two operands fit the 16 KiB WebGPU guarantees).
 */
export function flashKernel(
  kind: FlashKernelKind,
  D: number,
  tiling: FlashTiling,
): { name: string; wgsl: string; keys: number } {
  const cap = Math.max(32, 2 ** Math.ceil(Math.log2(D)));
  const keys = Math.max(1, Math.min(tiling.keys, Math.floor(1024 / cap)));
  const name = `attentionFlash${kind}_d${cap}_r${tiling.rows}_k${keys}`;
  let wgsl = generated.get(name);
  if (!wgsl) {
    const make = kind === "Forward"
      ? forwardWgsl
      : kind === "BackwardQ"
      ? backwardQWgsl
      : backwardKvWgsl;
    generated.set(name, wgsl = make(tiling.rows, keys, cap));
  }
  return { name, wgsl, keys };
}

function check(ctx: GpuContext, B: number, H: number, Hkv: number, D: number) {
  if (Hkv <= 0 || H % Hkv !== 0) {
    throw new Error(`attention: ${H} query heads do not split into ${Hkv} kv heads`);
  }
  if (D > FLASH_MAX_HEAD_DIM) {
    throw new Error(`attention: head dimension ${D} exceeds the kernel's ${FLASH_MAX_HEAD_DIM}`);
  }
  const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (B * Hkv > maxGroups) {
    throw new Error(`attention: B*Hkv=${B * Hkv} exceeds ${maxGroups} workgroups`);
  }
}

function run(
  ctx: GpuContext,
  kind: FlashKernelKind,
  tensors: Tensor[],
  [B, T, H, Hkv, D]: number[],
  tiling: FlashTiling,
): void {
  check(ctx, B, H, Hkv, D);
  const { name, wgsl } = flashKernel(kind, D, tiling);
  const rows = kind === "BackwardKv" ? T : T * (H / Hkv);
  const words = [B, T, H, Hkv, D, f32bits(1 / Math.sqrt(D))];
  ctx.launch(name, wgsl, tensors, words, [Math.ceil(rows / tiling.rows), B * Hkv]);
}

/** Records the forward: out (B,T,H,D) and stats (B,H,T,2) from q, k, v. */
export function attentionForwardFlash(
  ctx: GpuContext,
  out: Tensor,
  stats: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  shape: [number, number, number, number, number],
  tiling: FlashTiling = FLASH_TILING,
): void {
  run(ctx, "Forward", [out, stats, q, k, v], shape, tiling);
}

/** Records the backward: dq, dk, dv overwritten; rowDot (B,H,T) is scratch. */
export function attentionBackwardFlash(
  ctx: GpuContext,
  grads: { dq: Tensor; dk: Tensor; dv: Tensor; rowDot: Tensor },
  saved: { dOut: Tensor; q: Tensor; k: Tensor; v: Tensor; out: Tensor; stats: Tensor },
  shape: [number, number, number, number, number],
  tiling: FlashTiling = FLASH_TILING,
): void {
  const { dq, dk, dv, rowDot } = grads;
  const { dOut, q, k, v, out, stats } = saved;
  run(ctx, "BackwardQ", [dq, rowDot, dOut, q, k, v, out, stats], shape, tiling);
  run(ctx, "BackwardKv", [dk, dv, rowDot, stats, q, dOut, k, v], shape, tiling);
}
