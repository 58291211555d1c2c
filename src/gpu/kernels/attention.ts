/**
 * Causal grouped-query attention in WGSL, forward and backward side by side; the semantics are
 * those of `src/cpu/attention.ts` (HF eager attention: kv head `floor(h / (H/Hkv))`, scores
 * scaled by 1/sqrt(D), max-subtracted f32 softmax, exact zeros above the diagonal).
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
 * storage loads per lane: per key s the forward reads 2D + 5 * rows values for 2 * D * rows
 * multiply-adds, where the old one-workgroup-per-row kernel read 4D per row and spent most of
 * its time in tree reductions. Consecutive invocations take the same row block of different
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

import { attentionBackwardWorkgroup, attentionForwardWorkgroup } from "./attention_workgroup.ts";
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
 * workgroup-per-row layout that hardware GPUs use by default; kept as a tested alternative.
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

// Per query row r of the block: t, head, q row base, probs row base, whether it exists.
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
  let p${r} = ((b * H + h${r}) * T + t${r}) * T;`)
  }`;
}

/**
 * Forward; invocation i -> (b, kvh) = i % (B*Hkv), query rows from (i / (B*Hkv)) * rows.
 * out, q: (B,T,H,D); k, v: (B,T,Hkv,D); probs: (B,H,T,T). Three passes over s: scores and the
 * row max; exp and the row sum; probs = e / sum and out += probs * v.
 */
export function attentionForwardWgsl(cap: number, R: number): string {
  return `${prologue(R, ["out", "probs", "q", "k", "v"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    qv[${r * cap}u + d] = q[q${r} + d];`)}
  }
${each(R, (r) => `  var m${r} = ${F32_LOWEST};\n  var l${r} = 0.0;`)}
  for (var s = 0u; s < sEnd; s++) {
    let kb = ((b * T + s) * Hkv + kvh) * D;
${each(R, (r) => `    var dot${r} = 0.0;`)}
    for (var d = 0u; d < D; d++) {
      let kd = k[kb + d];
${each(R, (r) => `      dot${r} += qv[${r * cap}u + d] * kd;`)}
    }
${
    each(R, (r) =>
      `    if (ok${r} && s <= t${r}) { let x = dot${r} * u.scale; probs[p${r} + s] = x; m${r} = max(m${r}, x); }`)
  }
  }
  for (var s = 0u; s < sEnd; s++) {
${
    each(R, (r) =>
      `    if (ok${r} && s <= t${r}) { let e = exp(probs[p${r} + s] - m${r}); probs[p${r} + s] = e; l${r} += e; }`)
  }
  }
  for (var s = 0u; s < sEnd; s++) {
${
    each(R, (r) =>
      `    var pr${r} = 0.0;
    if (ok${r} && s <= t${r}) { pr${r} = probs[p${r} + s] / l${r}; }
    if (ok${r}) { probs[p${r} + s] = pr${r}; }`)
  }
    let vb = ((b * T + s) * Hkv + kvh) * D;
    for (var d = 0u; d < D; d++) {
      let vd = v[vb + d];
${each(R, (r) => `      acc[${r * cap}u + d] += pr${r} * vd;`)}
    }
  }
  for (var s = sEnd; s < T; s++) {
${each(R, (r) => `    if (ok${r}) { probs[p${r} + s] = 0.0; }`)}
  }
${
    each(R, (r) =>
      `  if (ok${r}) { for (var d = 0u; d < D; d++) { out[q${r} + d] = acc[${r * cap}u + d]; } }`)
  }
}
`;
}

/**
 * Backward, part 1: dScores (scale folded in) and dq; rows as in the forward.
 * dq, dOut: (B,T,H,D); k, v: (B,T,Hkv,D); probs, dScores: (B,H,T,T). Pass 1 keeps
 * dProbs = dOut . v in the dScores row and sums rowDot = probs . dProbs; pass 2 turns it into
 * dScores = probs * (dProbs - rowDot) * scale and adds dScores * k into dq.
 */
export function attentionBackwardRowsWgsl(cap: number, R: number): string {
  return `${prologue(R, ["dq", "dScores", "dOut", "k", "v", "probs"])}
${queryRows(R)}
  var go: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    go[${r * cap}u + d] = dOut[q${r} + d];`)}
  }
${each(R, (r) => `  var rowDot${r} = 0.0;`)}
  for (var s = 0u; s < sEnd; s++) {
    let vb = ((b * T + s) * Hkv + kvh) * D;
${each(R, (r) => `    var dot${r} = 0.0;`)}
    for (var d = 0u; d < D; d++) {
      let vd = v[vb + d];
${each(R, (r) => `      dot${r} += go[${r * cap}u + d] * vd;`)}
    }
${
    each(R, (r) =>
      `    if (ok${r} && s <= t${r}) { dScores[p${r} + s] = dot${r}; rowDot${r} += probs[p${r} + s] * dot${r}; }`)
  }
  }
  for (var s = 0u; s < sEnd; s++) {
${
    each(R, (r) =>
      `    var ds${r} = 0.0;
    if (ok${r} && s <= t${r}) { ds${r} = probs[p${r} + s] * (dScores[p${r} + s] - rowDot${r}) * u.scale; }
    if (ok${r}) { dScores[p${r} + s] = ds${r}; }`)
  }
    let kb = ((b * T + s) * Hkv + kvh) * D;
    for (var d = 0u; d < D; d++) {
      let kd = k[kb + d];
${each(R, (r) => `      acc[${r * cap}u + d] += ds${r} * kd;`)}
    }
  }
  for (var s = sEnd; s < T; s++) {
${each(R, (r) => `    if (ok${r}) { dScores[p${r} + s] = 0.0; }`)}
  }
${
    each(R, (r) =>
      `  if (ok${r}) { for (var d = 0u; d < D; d++) { dq[q${r} + d] = acc[${r * cap}u + d]; } }`)
  }
}
`;
}

/**
 * Backward, part 2: dk and dv; invocation i -> (b, kvh), key rows s from (i / (B*Hkv)) * keys,
 * each summed over the group's heads, then t >= s, in that fixed order.
 * dk, dv: (B,T,Hkv,D); q, dOut: (B,T,H,D); dScores, probs: (B,H,T,T)
 */
export function attentionBackwardKvWgsl(cap: number, R: number): string {
  return `${prologue(R, ["dk", "dv", "dScores", "probs", "q", "dOut"])}
  let last = min(first + ${R}u, T) - 1u;
${
    each(R, (r) =>
      `  let s${r} = min(first + ${r}u, last);
  let ok${r} = first + ${r}u <= last;`)
  }
  var gk: array<f32, ${R * cap}>;
  var gv: array<f32, ${R * cap}>;
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t = first; t < T; t++) {
      let p = ((b * H + h) * T + t) * T;
${
    each(R, (r) =>
      `      var ds${r} = 0.0;
      var pr${r} = 0.0;
      if (s${r} <= t) { ds${r} = dScores[p + s${r}]; pr${r} = probs[p + s${r}]; }`)
  }
      let qb = ((b * T + t) * H + h) * D;
      for (var d = 0u; d < D; d++) {
        let qd = q[qb + d];
        let od = dOut[qb + d];
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
    let kb = ((b * T + s${r}) * Hkv + kvh) * D;
    for (var d = 0u; d < D; d++) { dk[kb + d] = gk[${r * cap}u + d]; dv[kb + d] = gv[${
        r * cap
      }u + d]; }
  }`)
  }
}
`;
}

/** The tiling for this context: rows per invocation only pay off on software adapters. */
export function attentionTiling(ctx: GpuContext): AttentionTiling | "workgroup" {
  // On hardware GPUs one workgroup per query row (attention_workgroup.ts) measured faster than
  // rows per invocation: the SmolLM2-135M-shaped step on an H200 took 0.73 s against 1.08 s.
  return ctx.isSoftware ? ATTENTION_TILING_CPU : "workgroup";
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

/** Records the forward: out (B,T,H,D) and probs (B,H,T,T) from q, k, v. */
export function attentionForward(
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
  tiling: AttentionTiling | "workgroup" = attentionTiling(ctx),
): void {
  if (tiling === "workgroup") {
    return attentionForwardWorkgroup(ctx, out, probs, q, k, v, B, T, H, Hkv, D);
  }
  checkShape(H, Hkv, D);
  launch(ctx, "Forward", [out, probs, q, k, v], [B, T, H, Hkv, D], tiling.rows);
}

/** Records the backward: dq, dk, dv overwritten; dScores (B,H,T,T) is scratch. */
export function attentionBackward(
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
  tiling: AttentionTiling | "workgroup" = attentionTiling(ctx),
): void {
  if (tiling === "workgroup") {
    return attentionBackwardWorkgroup(
      ctx,
      dq,
      dk,
      dv,
      dScores,
      dOut,
      q,
      k,
      v,
      probs,
      B,
      T,
      H,
      Hkv,
      D,
    );
  }
  checkShape(H, Hkv, D);
  const shape: [number, number, number, number, number] = [B, T, H, Hkv, D];
  launch(ctx, "BackwardRows", [dq, dScores, dOut, k, v, probs], shape, tiling.rows);
  launch(ctx, "BackwardKv", [dk, dv, dScores, probs, q, dOut], shape, tiling.keys);
}
