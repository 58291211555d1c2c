/**
 * The LM head fused with log-softmax and the target gather, one vocabulary chunk per call: the
 * logits of a chunk are computed in workgroup tiles from the final hidden state and the head
 * weight and reduced on the spot, so no (rows, V) logits buffer exists (DESIGN.md: memory never
 * grows with T·V). src/gpu/lm_head.ts drives the chunks; semantics as src/cpu/logits.ts.
 *
 *   hidden:  (N, C) f32, the final norm's output
 *   weight:  (Vc, C) rows v0..v0+Vc of the head (V, C), f32 or a frozen bf16/f16 (weight_load.ts)
 *   targets: (N) i32, < 0 where a row does not count
 *   partial: (N, G, 3) per row and group of GROUP_COLS columns: (max, sum exp(x - max), target logit)
 *   stats:   (N, 3) the running (max, sum, target logit) between chunks; lse, tokenLogp: (N)
 *   dLogits: (N, Vc) the backward's scratch for one chunk; dHidden: (N, C)
 *
 * A workgroup computes a TILE_ROWS x TILE_COLS tile of logits, each invocation a 4 x 4 block,
 * every logit the sum over k = 0..C-1 in ascending order, one multiply-add per step. Forward: a
 * workgroup walks one group of GROUP_COLS columns tile by tile, and one invocation per row scans
 * the tile's columns in ascending order, keeping an online (max, sum exp(x - max)) and the
 * target's logit; the merge then folds the groups into the running statistics in ascending
 * order. Group boundaries are fixed multiples of GROUP_COLS from column 0 and chunks are
 * multiples of GROUP_COLS, so every row's reduction is the same sequence of f32 operations
 * whatever the chunk size: results are bit-identical across chunk sizes. The chunk width and the
 * first column are uniforms, so every chunk size runs the same compiled kernels.
 *
 * Backward: per chunk the logits are recomputed by the same tile code, dLogits = rowGrad *
 * (onehot(target) - exp(logit - lse)) (0 on rows that do not count) is written to the scratch,
 * and dHidden continues its sum over the vocabulary from the previous chunk's stored partial
 * (k ascending from column 0, as one unchunked product would).
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in one dispatch.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, type GpuContext, grid1d } from "../context.ts";
import { type F16Mode, type WeightDType, weightLoad } from "./weight_load.ts";

/** Rows of a logits tile (4 invocations x 4 rows). */
export const TILE_ROWS = 16;
/** Columns of a logits tile (16 invocations x 4 columns). */
export const TILE_COLS = 64;
/** Columns of one reduction group: chunks are multiples of it, partial statistics one per group. */
export const GROUP_COLS = 256;
/** Invocations along columns and rows of a tile. */
export const LX = 16;
export const LY = 4;
export const WG: number = LX * LY;
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** What a variant's WGSL depends on besides uniforms. */
export interface LmHeadVariant {
  /** C % 4 == 0: hidden and weight rows are read four elements at a time. */
  vec: boolean;
  /** How the weight is stored. */
  dtype: WeightDType;
  f16Mode?: F16Mode;
}

/** The variant part of a pipeline name. */
export const tag = (v: LmHeadVariant): string =>
  `${v.vec ? "_v4" : ""}${weightLoad("w", 3, v.dtype, v.vec, { f16Mode: v.f16Mode }).tag}`;

/**
 * The tile's logits into `acc` (16 values, block row i, column j at i*4 + j): rows r0 + ly + 4i,
 * columns c0 + lx + 16j of the chunk, clamped to the last valid row and column (clamped results
 * are never used). Needs `hidden` at binding 2 and the weight `w` at binding 3.
 */
export function tileDot(v: LmHeadVariant): string {
  const w = weightLoad("w", 3, v.dtype, v.vec, { f16Mode: v.f16Mode });
  // Zeroed by statements: naga hoists a loop body's `var` and zeroes it once, not per iteration.
  const lines = [`  var acc: array<f32, 16>;`, ...range(16).map((e) => `  acc[${e}] = 0.0;`)];
  for (const i of range(4)) lines.push(`  let ra${i} = min(r0 + ly + ${LY * i}u, u.N - 1u) * u.C;`);
  for (const j of range(4)) {
    lines.push(`  let cb${j} = min(c0 + lx + ${LX * j}u, u.Vc - 1u) * u.C;`);
  }
  if (v.vec) {
    lines.push(`  for (var k = 0u; k < u.C; k += 4u) {`);
    for (const i of range(4)) lines.push(`    let a${i} = hidden[(ra${i} + k) >> 2u];`);
    for (const j of range(4)) {
      lines.push(`    let b${j} = ${w.at4(`cb${j} + k`)};`);
      for (const i of range(4)) {
        for (const c of ["x", "y", "z", "w"]) {
          lines.push(`    acc[${i * 4 + j}] = acc[${i * 4 + j}] + a${i}.${c} * b${j}.${c};`);
        }
      }
    }
  } else {
    lines.push(`  for (var k = 0u; k < u.C; k++) {`);
    for (const i of range(4)) lines.push(`    let a${i} = hidden[ra${i} + k];`);
    for (const j of range(4)) {
      lines.push(`    let b${j} = ${w.at(`cb${j} + k`)};`);
      for (const i of range(4)) {
        lines.push(`    acc[${i * 4 + j}] = acc[${i * 4 + j}] + a${i} * b${j};`);
      }
    }
  }
  lines.push(`  }`);
  return lines.join("\n");
}

/** Uniforms, binding 1 `first`, 2 hidden, 3 the weight `w`. */
export function header(v: LmHeadVariant, params: string, first: string): string {
  const w = weightLoad("w", 3, v.dtype, v.vec, { f16Mode: v.f16Mode });
  return `${w.directives}struct Params { ${params} }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> ${first}: array<f32>;
@group(0) @binding(2) var<storage, read_write> hidden: array<${v.vec ? "vec4<f32>" : "f32"}>;
${w.decl}
`;
}

/**
 * Forward statistics of one chunk, per row and group: bindings 4 targets, 1 partial (N, G, 3).
 * Dispatch (G, ceil(N / TILE_ROWS)).
 */
export function lmHeadStatsWgsl(v: LmHeadVariant): string {
  return `${header(v, "N: u32, Vc: u32, C: u32, v0: u32, G: u32", "partial")}
@group(0) @binding(4) var<storage, read_write> targets: array<i32>;
const LOWEST: f32 = ${F32_LOWEST};
var<workgroup> tile: array<f32, ${TILE_ROWS * TILE_COLS}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let r0 = wid.y * ${TILE_ROWS}u;
  let lx = lid % ${LX}u;
  let ly = lid / ${LX}u;
  let row = r0 + lid;
  var tgt = -1;
  if (lid < ${TILE_ROWS}u && row < u.N) { tgt = targets[row]; }
  var m = LOWEST;
  var s = 0.0;
  var tl = 0.0;
  let g0 = g * ${GROUP_COLS}u;
  let tiles = (min(${GROUP_COLS}u, u.Vc - g0) + ${TILE_COLS - 1}u) / ${TILE_COLS}u;
  for (var t = 0u; t < tiles; t++) {
    let c0 = g0 + t * ${TILE_COLS}u;
${tileDot(v).replace(/^/gm, "  ")}
${
    range(16).map((e) =>
      `    tile[(ly + ${LY * Math.floor(e / 4)}u) * ${TILE_COLS}u + lx + ${
        LX * (e % 4)
      }u] = acc[${e}];`
    ).join("\n")
  }
    workgroupBarrier();
    if (lid < ${TILE_ROWS}u) {
      let n = min(${TILE_COLS}u, u.Vc - c0);
      for (var c = 0u; c < n; c++) {
        let x = tile[lid * ${TILE_COLS}u + c];
        if (x > m) {
          s = s * exp(m - x) + 1.0;
          m = x;
        } else {
          s += exp(x - m);
        }
        if (i32(u.v0 + c0 + c) == tgt) { tl = x; }
      }
    }
    workgroupBarrier();
  }
  if (lid < ${TILE_ROWS}u && row < u.N) {
    let p = (row * u.G + g) * 3u;
    partial[p] = m;
    partial[p + 1u] = s;
    partial[p + 2u] = tl;
  }
}
`;
}

/**
 * Folds a chunk's groups into the running statistics, in ascending order; on the last chunk
 * writes lse and tokenLogp. One invocation per row.
 */
export const LM_HEAD_MERGE_WGSL = /* wgsl */ `
struct Params { N: u32, G: u32, v0: u32, Vc: u32, first: u32, last: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokenLogp: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<storage, read_write> targets: array<i32>;
const LOWEST: f32 = ${F32_LOWEST};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= u.N) { return; }
  var m = LOWEST;
  var s = 0.0;
  var tl = 0.0;
  if (u.first == 0u) {
    m = stats[r * 3u];
    s = stats[r * 3u + 1u];
    tl = stats[r * 3u + 2u];
  }
  let tgt = targets[r];
  for (var g = 0u; g < u.G; g++) {
    let p = (r * u.G + g) * 3u;
    let mg = partial[p];
    let mm = max(m, mg);
    s = s * exp(m - mm) + partial[p + 1u] * exp(mg - mm);
    m = mm;
    let lo = i32(u.v0 + g * ${GROUP_COLS}u);
    if (tgt >= lo && tgt < lo + ${GROUP_COLS} && tgt < i32(u.v0 + u.Vc)) {
      tl = partial[p + 2u];
    }
  }
  if (u.last == 0u) {
    stats[r * 3u] = m;
    stats[r * 3u + 1u] = s;
    stats[r * 3u + 2u] = tl;
    return;
  }
  let rowLse = m + log(s);
  lse[r] = rowLse;
  tokenLogp[r] = select(0.0, tl - rowLse, tgt >= 0);
}
`;

const generated = new Map<string, string>();
/** The WGSL of pipeline `name`, generated once. */
export function source(name: string, make: () => string): string {
  let wgsl = generated.get(name);
  if (!wgsl) generated.set(name, wgsl = make());
  return wgsl;
}

/** The variant that reads `weight` with rows of C elements. */
export function variantOf(ctx: GpuContext, weight: Tensor, C: number): LmHeadVariant {
  if (weight.dtype === "i32") throw new Error("lm head: the weight must be a float tensor");
  return { vec: C % 4 === 0, dtype: weight.dtype, f16Mode: ctx.f16Mode };
}

/** Records one chunk's per-group statistics into partial (N, G, 3), G = ceil(Vc / GROUP_COLS). */
export function lmHeadStats(
  ctx: GpuContext,
  partial: Tensor,
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  shape: { N: number; Vc: number; C: number; v0: number },
): void {
  const { N, Vc, C, v0 } = shape;
  const v = variantOf(ctx, weight, C);
  const G = Math.ceil(Vc / GROUP_COLS);
  const name = `lm_head_stats${tag(v)}`;
  ctx.launch(name, source(name, () => lmHeadStatsWgsl(v)), [partial, hidden, weight, targets], [
    N,
    Vc,
    C,
    v0,
    G,
  ], [G, Math.ceil(N / TILE_ROWS)]);
}

/** Records the fold of one chunk's groups into stats (N, 3); on `last`, lse and tokenLogp. */
export function lmHeadMerge(
  ctx: GpuContext,
  out: { stats: Tensor; lse: Tensor; tokenLogp: Tensor },
  partial: Tensor,
  targets: Tensor,
  shape: { N: number; Vc: number; v0: number; first: boolean; last: boolean },
): void {
  const { N, Vc, v0, first, last } = shape;
  ctx.launch(
    "lm_head_merge",
    LM_HEAD_MERGE_WGSL,
    [out.stats, out.lse, out.tokenLogp, partial, targets],
    [N, Math.ceil(Vc / GROUP_COLS), v0, Vc, first ? 1 : 0, last ? 1 : 0],
    grid1d(N, 64, ctx.limits.maxComputeWorkgroupsPerDimension),
  );
}
