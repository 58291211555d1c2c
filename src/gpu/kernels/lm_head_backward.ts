/**
 * The fused LM head's backward kernels, one vocabulary chunk per call (see kernels/lm_head.ts for
 * the shapes, the tile and the summation orders): dLogits (N, Vc) from logits recomputed by the
 * forward's tile code, and dHidden (N, C) continuing its sum over the vocabulary from the previous
 * chunk's stored value, so it sums in ascending column order from 0 whatever the chunk size.
 *
 * @module
 */

import type { Tensor } from "../../backend/mod.ts";
import type { GpuContext } from "../context.ts";
import {
  header,
  type LmHeadVariant,
  LX,
  LY,
  range,
  source,
  tag,
  TILE_COLS,
  TILE_ROWS,
  tileDot,
  variantOf,
  WG,
} from "./lm_head.ts";
import { weightLoad } from "./weight_load.ts";

/**
 * Backward, one chunk: dLogits (N, Vc) = rowGrad * (onehot(target) - exp(logit - lse)), 0 where
 * the target is < 0. Bindings 4 lse, 5 targets, 6 rowGrad. Dispatch (ceil(Vc/64), ceil(N/16)).
 */
export function lmHeadGradWgsl(v: LmHeadVariant): string {
  const stores = range(16).map((e) => {
    const i = Math.floor(e / 4), j = e % 4;
    return `  store(r0 + ly + ${LY * i}u, c0 + lx + ${LX * j}u, acc[${e}]);`;
  });
  return `${header(v, "N: u32, Vc: u32, C: u32, v0: u32", "dLogits")}
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> targets: array<i32>;
@group(0) @binding(6) var<storage, read_write> rowGrad: array<f32>;

fn store(row: u32, col: u32, logit: f32) {
  if (row >= u.N || col >= u.Vc) { return; }
  let tgt = targets[row];
  var grad = 0.0;
  if (tgt >= 0) {
    let onehot = select(0.0, 1.0, u.v0 + col == u32(tgt));
    grad = rowGrad[row] * (onehot - exp(logit - lse[row]));
  }
  dLogits[row * u.Vc + col] = grad;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c0 = wid.x * ${TILE_COLS}u;
  let r0 = wid.y * ${TILE_ROWS}u;
  let lx = lid % ${LX}u;
  let ly = lid / ${LX}u;
${tileDot(v)}
${stores.join("\n")}
}
`;
}

/**
 * dHidden (N, C) continues over one chunk: = (first ? 0 : dHidden) + sum over c ascending of
 * dLogits[r, c] * w[c, k]. Bindings 1 dHidden, 2 dLogits (N, Vc), 3 w. Dispatch
 * (ceil(C/64), ceil(N/16)).
 */
export function lmHeadDHiddenWgsl(v: Omit<LmHeadVariant, "vec">): string {
  const w = weightLoad("w", 3, v.dtype, false, { f16Mode: v.f16Mode });
  const lines: string[] = [];
  for (const i of range(4)) lines.push(`  let rr${i} = min(r0 + ly + ${LY * i}u, u.N - 1u);`);
  for (const j of range(4)) lines.push(`  let kk${j} = min(k0 + lx + ${LX * j}u, u.C - 1u);`);
  lines.push(`  var acc: array<f32, 16>;`);
  lines.push(`  if (u.first == 0u) {`);
  for (const e of range(16)) {
    lines.push(`    acc[${e}] = dHidden[rr${Math.floor(e / 4)} * u.C + kk${e % 4}];`);
  }
  lines.push(`  }`);
  lines.push(`  for (var c = 0u; c < u.Vc; c++) {`);
  for (const i of range(4)) lines.push(`    let d${i} = dLogits[rr${i} * u.Vc + c];`);
  for (const j of range(4)) {
    lines.push(`    let b${j} = ${w.at(`c * u.C + kk${j}`)};`);
    for (const i of range(4)) {
      lines.push(`    acc[${i * 4 + j}] = acc[${i * 4 + j}] + d${i} * b${j};`);
    }
  }
  lines.push(`  }`);
  for (const e of range(16)) {
    const i = Math.floor(e / 4), j = e % 4;
    lines.push(
      `  if (r0 + ly + ${LY * i}u < u.N && k0 + lx + ${LX * j}u < u.C) ` +
        `{ dHidden[rr${i} * u.C + kk${j}] = acc[${e}]; }`,
    );
  }
  return `${w.directives}struct Params { N: u32, Vc: u32, C: u32, first: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dHidden: array<f32>;
@group(0) @binding(2) var<storage, read_write> dLogits: array<f32>;
${w.decl}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k0 = wid.x * ${TILE_COLS}u;
  let r0 = wid.y * ${TILE_ROWS}u;
  let lx = lid % ${LX}u;
  let ly = lid / ${LX}u;
${lines.join("\n")}
}
`;
}

/** Records one chunk's dLogits (N, Vc) from recomputed logits. */
export function lmHeadGrad(
  ctx: GpuContext,
  dLogits: Tensor,
  hidden: Tensor,
  weight: Tensor,
  rows: { lse: Tensor; targets: Tensor; rowGrad: Tensor },
  shape: { N: number; Vc: number; C: number; v0: number },
): void {
  const { N, Vc, C, v0 } = shape;
  const v = variantOf(ctx, weight, C);
  const name = `lm_head_grad${tag(v)}`;
  ctx.launch(
    name,
    source(name, () => lmHeadGradWgsl(v)),
    [dLogits, hidden, weight, rows.lse, rows.targets, rows.rowGrad],
    [N, Vc, C, v0],
    [Math.ceil(Vc / TILE_COLS), Math.ceil(N / TILE_ROWS)],
  );
}

/** Records dHidden (N, C) (continued unless `first`) += dLogits (N, Vc) @ weight (Vc, C). */
export function lmHeadDHidden(
  ctx: GpuContext,
  dHidden: Tensor,
  dLogits: Tensor,
  weight: Tensor,
  shape: { N: number; Vc: number; C: number; first: boolean },
): void {
  const { N, Vc, C, first } = shape;
  const v = { ...variantOf(ctx, weight, C), vec: false };
  const name = `lm_head_dhidden${tag(v)}`;
  ctx.launch(
    name,
    source(name, () => lmHeadDHiddenWgsl(v)),
    [dHidden, dLogits, weight],
    [N, Vc, C, first ? 1 : 0],
    [Math.ceil(C / TILE_COLS), Math.ceil(N / TILE_ROWS)],
  );
}
