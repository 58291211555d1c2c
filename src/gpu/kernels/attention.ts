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
 * storage loads per lane: per key s the forward reads 4D values (k three times, v once) for
 * 4 * D * rows multiply-adds; the dk/dv kernel keeps its key rows and each q, dOut row in private
 * arrays, so it reads 2D per query row as before. Consecutive invocations take the same row block of different
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
  FLASH_TILING,
  type FlashTiling,
} from "./attention_flash.ts";
import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, f32bits, type GpuContext, grid1d } from "../context.ts";

/** Rows per invocation of the attention kernels. */
export interface AttentionTiling {
  /** Query rows per invocation of the forward and dq kernels. */
  rows: number;
  /** Key rows per invocation of the dk/dv kernel. */
  keys: number;
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
const WG = 64;

/** `f(r)` for r in 0..n, joined by newlines: the per-row statements, unrolled. */
const each = (n: number, f: (r: number) => string) =>
  Array.from({ length: n }, (_, r) => f(r)).join("\n");

// Shared prologue: invocation -> (b, kvh, first row), and per row r its t, head, bases, validity.
function prologue(R: number, bindings: string[]): string {
  return /* wgsl */ `struct Params { B: u32, T: u32, H: u32, Hkv: u32, blocks: u32, scale: f32, D: u32 }
@group(0) @binding(0) var<uniform> u: Params;
${
    bindings.map((b, i) =>
      `@group(0) @binding(${i + 1}) var<storage, read_write> ${b}: array<f32>;`
    )
      .join("\n")
  }

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  let pairs = u.B * u.Hkv;
  if (i >= pairs * u.blocks) { return; }
  let T = u.T;
  let H = u.H;
  let Hkv = u.Hkv;
  let G = H / Hkv;
  let D = u.D;
  let b = (i % pairs) / Hkv;
  let kvh = i % Hkv;
  let first = (i / pairs) * ${R}u;`;
}

// Per query row r of the block: t, head, q row base, stats row, whether it exists.
function queryRows(R: number): string {
  return `  let last = min(first + ${R}u, T * G) - 1u;
  let sEnd = last / G + 1u;
${
    each(R, (r) =>
      `  let qi${r} = min(first + ${r}u, last);
  let t${r} = qi${r} / G;
  let h${r} = kvh * G + qi${r} % G;
  let ok${r} = first + ${r}u <= last;
  let q${r} = ((b * T + t${r}) * H + h${r}) * D;
  let row${r} = (b * H + h${r}) * T + t${r};`)
  }`;
}

// Per row r: dot{r} = q_r . k[s] (and, with `withV`, dv{r} = dOut_r . v[s]), d ascending.
function dots(R: number, cap: number, withV: boolean, keepK: boolean): string {
  return `    let kb = ((b * T + s) * Hkv + kvh) * D;
${each(R, (r) => `    var dot${r} = 0.0;${withV ? `\n    var dv${r} = 0.0;` : ""}`)}
    for (var d = 0u; d < D; d++) {
      let kd = k[kb + d];${keepK ? "\n      kr[d] = kd;" : ""}${withV ? "\n      let vd = v[kb + d];" : ""}
${
    each(R, (r) =>
      `      dot${r} += qv[${r * cap}u + d] * kd;${
        withV ? `\n      dv${r} += go[${r * cap}u + d] * vd;` : ""
      }`)
  }
    }`;
}

/**
 * Forward; invocation i -> (b, kvh) = i % (B*Hkv), query rows from (i / (B*Hkv)) * rows.
 * out, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2). Three passes over s, each computing
 * the scores afresh (no (T, T) buffer): the row max; the sum of exp(score - max); then
 * probs = exp(score - max) / sum and out += probs * v. Every value is computed by the same
 * operations in the same order as when the scores were stored, so the results are the same bits.
 */
export function attentionForwardWgsl(cap: number, R: number): string {
  return `${prologue(R, ["out", "stats", "q", "k", "v"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    qv[${r * cap}u + d] = q[q${r} + d];`)}
  }
${each(R, (r) => `  var m${r} = ${F32_LOWEST};\n  var l${r} = 0.0;`)}
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, false, false)}
${
    each(R, (r) => `    if (ok${r} && s <= t${r}) { m${r} = max(m${r}, dot${r} * u.scale); }`)
  }
  }
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, false, false)}
${
    each(R, (r) => `    if (ok${r} && s <= t${r}) { l${r} += exp(dot${r} * u.scale - m${r}); }`)
  }
  }
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, false, false)}
${
    each(R, (r) =>
      `    var pr${r} = 0.0;
    if (ok${r} && s <= t${r}) { pr${r} = exp(dot${r} * u.scale - m${r}) / l${r}; }`)
  }
    for (var d = 0u; d < D; d++) {
      let vd = v[kb + d];
${each(R, (r) => `      acc[${r * cap}u + d] += pr${r} * vd;`)}
    }
  }
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { out[q${r} + d] = acc[${r * cap}u + d]; }
    stats[row${r} * 2u] = m${r};
    stats[row${r} * 2u + 1u] = l${r};
  }`)
  }
}
`;
}

// probs pr{r} of row r at key s from dot{r} and the saved stats; 0 where masked.
function recomputeProbs(R: number): string {
  return each(R, (r) =>
    `    var pr${r} = 0.0;
    if (ok${r} && s <= t${r}) { pr${r} = exp(dot${r} * u.scale - m${r}) / l${r}; }`);
}

/**
 * Backward, part 1: dq, and rowDot = probs . dProbs per row; rows as in the forward.
 * dq, dOut, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2); rowDot: (B,H,T). Pass 1 sums
 * rowDot = probs . (dOut . v); pass 2 forms dScores = probs * (dProbs - rowDot) * scale and adds
 * dScores * k into dq; both recompute probs from the scores and stats.
 */
export function attentionBackwardRowsWgsl(cap: number, R: number): string {
  return `${prologue(R, ["dq", "rowDot", "dOut", "q", "k", "v", "stats"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var go: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  var kr: array<f32, ${cap}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    qv[${r * cap}u + d] = q[q${r} + d];\n    go[${r * cap}u + d] = dOut[q${r} + d];`)}
  }
${
    each(R, (r) =>
      `  let m${r} = stats[row${r} * 2u];\n  let l${r} = stats[row${r} * 2u + 1u];\n  var rd${r} = 0.0;`)
  }
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, true, false)}
${recomputeProbs(R)}
${each(R, (r) => `    if (ok${r} && s <= t${r}) { rd${r} += pr${r} * dv${r}; }`)}
  }
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, true, true)}
${recomputeProbs(R)}
${
    each(R, (r) =>
      `    var ds${r} = 0.0;
    if (ok${r} && s <= t${r}) { ds${r} = pr${r} * (dv${r} - rd${r}) * u.scale; }`)
  }
    for (var d = 0u; d < D; d++) {
      let kd = kr[d];
${each(R, (r) => `      acc[${r * cap}u + d] += ds${r} * kd;`)}
    }
  }
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { dq[q${r} + d] = acc[${r * cap}u + d]; }
    rowDot[row${r}] = rd${r};
  }`)
  }
}
`;
}

/**
 * Backward, part 2: dk and dv; invocation i -> (b, kvh), key rows s from (i / (B*Hkv)) * keys,
 * each summed over the group's heads, then t >= s, in that fixed order; probs and dScores are
 * recomputed per (t, s) from q, k, v, dOut, stats and rowDot.
 * dk, dv, k, v: (B,T,Hkv,D); q, dOut: (B,T,H,D); stats: (B,H,T,2); rowDot: (B,H,T)
 */
export function attentionBackwardKvWgsl(cap: number, R: number): string {
  return `${prologue(R, ["dk", "dv", "rowDot", "stats", "q", "dOut", "k", "v"])}
  let last = min(first + ${R}u, T) - 1u;
${
    each(R, (r) =>
      `  let s${r} = min(first + ${r}u, last);
  let ok${r} = first + ${r}u <= last;
  let kb${r} = ((b * T + s${r}) * Hkv + kvh) * D;`)
  }
  var kr: array<f32, ${R * cap}>;
  var vr: array<f32, ${R * cap}>;
  var gk: array<f32, ${R * cap}>;
  var gv: array<f32, ${R * cap}>;
  var qt: array<f32, ${cap}>;
  var ot: array<f32, ${cap}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    kr[${r * cap}u + d] = k[kb${r} + d];\n    vr[${r * cap}u + d] = v[kb${r} + d];`)}
  }
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t = first; t < T; t++) {
      let row = (b * H + h) * T + t;
      let qb = ((b * T + t) * H + h) * D;
${each(R, (r) => `      var dot${r} = 0.0;\n      var dp${r} = 0.0;`)}
      for (var d = 0u; d < D; d++) {
        let qd = q[qb + d];
        let od = dOut[qb + d];
        qt[d] = qd;
        ot[d] = od;
${
    each(R, (r) =>
      `        dot${r} += qd * kr[${r * cap}u + d];\n        dp${r} += od * vr[${r * cap}u + d];`)
  }
      }
      let m = stats[row * 2u];
      let l = stats[row * 2u + 1u];
      let rd = rowDot[row];
${
    each(R, (r) =>
      `      var ds${r} = 0.0;
      var pr${r} = 0.0;
      if (s${r} <= t) {
        pr${r} = exp(dot${r} * u.scale - m) / l;
        ds${r} = pr${r} * (dp${r} - rd) * u.scale;
      }`)
  }
      for (var d = 0u; d < D; d++) {
        let qd = qt[d];
        let od = ot[d];
${
    each(R, (r) =>
      `        gk[${r * cap}u + d] += ds${r} * qd;\n        gv[${r * cap}u + d] += pr${r} * od;`)
  }
      }
    }
  }
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { dk[kb${r} + d] = gk[${r * cap}u + d]; dv[kb${r} + d] = gv[${
        r * cap
      }u + d]; }
  }`)
  }
}
`;
}

/**
 * Whether the hardware layouts are forced on every adapter (`DPO_KERNEL_LAYOUTS=hardware`), so CI
 * tests the hardware kernels on llvmpipe. Read where the host has an environment (Deno); absent
 * in a browser. One small function, to be folded into GpuContextOptions.layouts.
 */
export function hardwareLayoutsForced(): boolean {
  const host = globalThis as { Deno?: { env?: { get(name: string): string | undefined } } };
  try {
    return host.Deno?.env?.get("DPO_KERNEL_LAYOUTS") === "hardware";
  } catch {
    return false; // no permission to read the environment: the built-in choice
  }
}

/** An attention layout: rows per invocation (software) or the flash tiles (hardware). */
export type AttentionLayout = AttentionTiling | FlashTiling;

/** The layout for this context: rows per invocation on software adapters, flash on hardware. */
export function attentionTiling(ctx: GpuContext): AttentionLayout {
  return ctx.isSoftware && !hardwareLayoutsForced() ? ATTENTION_TILING_CPU : FLASH_TILING;
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
): { name: string; wgsl: string; rows: number } {
  // Private arrays are sized for the head dimension rounded up to a power of two (at least 32),
  // so nearby head dimensions share one pipeline; loops run to the real D.
  const cap = Math.max(32, 2 ** Math.ceil(Math.log2(D)));
  // llvmpipe's compile time grows steeply with private-array size (a 512-float array alone takes
  // about 8 s), so the rows per invocation shrink as D grows: R * cap <= PRIVATE_FLOATS.
  const rows = Math.max(1, Math.min(R, Math.floor(PRIVATE_FLOATS / cap)));
  const name = `attention${kind}_d${cap}_r${rows}`;
  let wgsl = generated.get(name);
  if (!wgsl) {
    const make = kind === "Forward"
      ? attentionForwardWgsl
      : kind === "BackwardRows"
      ? attentionBackwardRowsWgsl
      : attentionBackwardKvWgsl;
    generated.set(name, wgsl = make(cap, rows));
  }
  return { name, wgsl, rows };
}

function launch(
  ctx: GpuContext,
  kind: AttentionKernelKind,
  tensors: Tensor[],
  shape: [number, number, number, number, number],
  maxRows: number,
): void {
  const [B, T, H, Hkv, D] = shape;
  const { name, wgsl, rows: R } = attentionKernel(kind, D, maxRows);
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
  tiling: AttentionLayout = attentionTiling(ctx),
): void {
  if ("flash" in tiling) {
    return attentionForwardFlash(ctx, out, stats, q, k, v, [B, T, H, Hkv, D], tiling);
  }
  checkShape(H, Hkv, D);
  launch(ctx, "Forward", [out, stats, q, k, v], [B, T, H, Hkv, D], tiling.rows);
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
  tiling: AttentionLayout = attentionTiling(ctx),
): void {
  const shape: [number, number, number, number, number] = [B, T, H, Hkv, D];
  if ("flash" in tiling) {
    const saved = { dOut, q, k, v, out, stats };
    return attentionBackwardFlash(ctx, { dq, dk, dv, rowDot }, saved, shape, tiling);
  }
  checkShape(H, Hkv, D);
  launch(ctx, "BackwardRows", [dq, rowDot, dOut, q, k, v, stats], shape, tiling.rows);
  launch(ctx, "BackwardKv", [dk, dv, rowDot, stats, q, dOut, k, v], shape, tiling.keys);
}
