/**
 * WGSL RMSNorm (HF LlamaRMSNorm in f32), forward and backward.
 *
 * Forward and dx come in two layouts, both summing in a fixed order, so any C works and results
 * repeat bit for bit:
 * - "row" (software adapters): one invocation per row sums its C terms in ascending order. On
 *   llvmpipe, which runs a workgroup's invocations as SIMD lanes and pays about 23 CPU cycles per
 *   lane for every storage or workgroup-memory load, the tree reduction of the "group" layout
 *   costs several times the row's own loads; a lane per row needs none (9x faster at C = 128).
 * - "group" (hardware GPUs): one workgroup of 256 per row; a strided per-invocation sum, then a
 *   tree reduction in workgroup memory. Coalesced loads and N * 256 threads suit a GPU.
 *
 * dw (C) += sum over rows of dOut * x * rstd runs in two stages without atomics: partial sums
 * over chunks of DW_CHUNK rows (ascending rows within a chunk), then one invocation per column
 * adds the chunks in ascending order. A batch of at most DW_CHUNK rows adds into dw directly.
 *
 * @module
 */

import { f32bits, type GpuContext, type GpuTensor, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { assertDistinct, INPUT_ACCESS } from "./elementwise.ts";

/** Rows per partial sum of the dw reduction. */
export const DW_CHUNK = 64;

// Sum of v over one row, shared by all 256 invocations of the workgroup (WGSL snippet).
const ROW_REDUCE = `var<workgroup> partial: array<f32, 256>;
fn rowSum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  return partial[0];
}`;

const ROW_ENTRY = `@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.N) { return; }
  let lid = lid3.x;
  let base = row * u.C;`;

// dst, x: (N, C); w: (C); rstd: (N)
export const RMSNORM_FORWARD_WGSL = `struct Params { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> w: array<f32>;
${ROW_REDUCE}
${ROW_ENTRY}
  var sumSq = 0.0;
  for (var c = lid; c < u.C; c += 256u) {
    let v = x[base + c];
    sumSq += v * v;
  }
  let r = 1.0 / sqrt(rowSum(lid, sumSq) / f32(u.C) + u.eps);
  if (lid == 0u) { rstd[row] = r; }
  for (var c = lid; c < u.C; c += 256u) {
    dst[base + c] = w[c] * (x[base + c] * r);
  }
}`;

// dx, dOut, x: (N, C); w: (C); rstd: (N). dx = r * (dOut*w - x * r^2 * sum(dOut*w*x) / C)
export const RMSNORM_BACKWARD_DX_WGSL = `struct Params { N: u32, C: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> dOut: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> w: array<f32>;
@group(0) @binding(5) var<storage, ${INPUT_ACCESS}> rstd: array<f32>;
${ROW_REDUCE}
${ROW_ENTRY}
  var dot = 0.0;
  for (var c = lid; c < u.C; c += 256u) {
    dot += dOut[base + c] * w[c] * x[base + c];
  }
  let r = rstd[row];
  let k = r * r * rowSum(lid, dot) / f32(u.C);
  for (var c = lid; c < u.C; c += 256u) {
    let grad = r * (dOut[base + c] * w[c] - x[base + c] * k);
    if (u.accumulate != 0u) { dx[base + c] += grad; } else { dx[base + c] = grad; }
  }
}`;

// One invocation per row (the "row" layout): workgroups of 64 rows, folded by grid1d.
const ROW_LANE_ENTRY = `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= u.N) { return; }
  let base = row * u.C;`;

// dst, x: (N, C); w: (C); rstd: (N). One invocation per row.
export const RMSNORM_FORWARD_ROW_WGSL = `struct Params { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> w: array<f32>;
${ROW_LANE_ENTRY}
  var sumSq = 0.0;
  for (var c = 0u; c < u.C; c++) {
    let v = x[base + c];
    sumSq += v * v;
  }
  let r = 1.0 / sqrt(sumSq / f32(u.C) + u.eps);
  rstd[row] = r;
  for (var c = 0u; c < u.C; c++) {
    dst[base + c] = w[c] * (x[base + c] * r);
  }
}`;

// dx, dOut, x: (N, C); w: (C); rstd: (N). One invocation per row.
export const RMSNORM_BACKWARD_DX_ROW_WGSL = `struct Params { N: u32, C: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> dOut: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> w: array<f32>;
@group(0) @binding(5) var<storage, ${INPUT_ACCESS}> rstd: array<f32>;
${ROW_LANE_ENTRY}
  var dot = 0.0;
  for (var c = 0u; c < u.C; c++) {
    dot += dOut[base + c] * w[c] * x[base + c];
  }
  let r = rstd[row];
  let k = r * r * dot / f32(u.C);
  for (var c = 0u; c < u.C; c++) {
    let grad = r * (dOut[base + c] * w[c] - x[base + c] * k);
    if (u.accumulate != 0u) { dx[base + c] += grad; } else { dx[base + c] = grad; }
  }
}`;

// dst: (chunks, C) partials, or dw (C) when accumulate; dOut, x: (N, C); rstd: (N).
// Grid (ceil(C/64), chunks): invocation (c, chunk) sums rows chunk*DW_CHUNK.. in order.
export const RMSNORM_BACKWARD_DW_PARTIAL_WGSL =
  `struct Params { N: u32, C: u32, rows: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> dOut: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> rstd: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= u.C) { return; }
  let chunk = gid.y;
  let end = min(u.N, (chunk + 1u) * u.rows);
  var sum = 0.0;
  for (var n = chunk * u.rows; n < end; n++) {
    sum += dOut[n * u.C + c] * x[n * u.C + c] * rstd[n];
  }
  let i = chunk * u.C + c;
  if (u.accumulate != 0u) { dst[i] += sum; } else { dst[i] = sum; }
}`;

// dw: (C) accumulated; partials: (chunks, C), added in ascending chunk order.
export const RMSNORM_BACKWARD_DW_SUM_WGSL = `struct Params { C: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> partials: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= u.C) { return; }
  var sum = dw[c];
  for (var k = 0u; k < u.chunks; k++) { sum += partials[k * u.C + c]; }
  dw[c] = sum;
}`;

/** How the forward and dx kernels map rows to invocations (see the module comment). */
export type RmsnormLayout = "row" | "group";

/** The layout for this context: "row" on software adapters, "group" on hardware GPUs. */
export function rmsnormLayout(ctx: GpuContext): RmsnormLayout {
  return ctx.isSoftware ? "row" : "group";
}

/** Workgroups for one per row, folded into two dimensions past 65535 rows. */
function rowGroups(N: number, maxPerDim: number): [number, number] {
  if (N <= maxPerDim) return [N, 1];
  const y = Math.ceil(N / maxPerDim);
  return [Math.ceil(N / y), y];
}

/**
 * Elements of the dw-partials scratch the backward of N rows of width C allocates (0 when one
 * chunk of rows adds straight into dw), for the memory plan.
 */
export function rmsnormScratchElements(N: number, C: number, maxPerDim: number): number {
  const chunks = Math.ceil(N / Math.max(DW_CHUNK, Math.ceil(N / maxPerDim)));
  return chunks <= 1 ? 0 : chunks * C;
}

/** Scratch for dw partials, per context, grown on demand and reused by every call after. */
const scratch = new WeakMap<GpuContext, GpuTensor>();

function partialsScratch(ctx: GpuContext, size: number): GpuTensor {
  let t = scratch.get(ctx);
  if (!t || t.size < size) {
    t = ctx.alloc("activations", size);
    scratch.set(ctx, t);
  }
  return ctx.view(t, 0, size);
}

/** out (N,C) = w * (x * rstd); rstd (N) = 1/sqrt(mean(x^2) + eps). */
export function rmsnormForward(
  ctx: GpuContext,
  out: Tensor,
  rstd: Tensor,
  x: Tensor,
  w: Tensor,
  N: number,
  C: number,
  eps: number,
  layout: RmsnormLayout = rmsnormLayout(ctx),
): void {
  assertDistinct("rmsnormForward", [out, rstd, x, w]);
  const uniforms = [N, C, f32bits(eps)];
  const maxPerDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (layout === "row") {
    const groups = grid1d(N, 64, maxPerDim);
    ctx.launch(
      "rmsnorm_forward_row",
      RMSNORM_FORWARD_ROW_WGSL,
      [out, rstd, x, w],
      uniforms,
      groups,
    );
  } else {
    const groups = rowGroups(N, maxPerDim);
    ctx.launch("rmsnorm_forward", RMSNORM_FORWARD_WGSL, [out, rstd, x, w], uniforms, groups);
  }
}

/** dx (N,C) = (or += with `accumulateDx`) d/dx; dw (C) += d/dw, rows summed in fixed order. */
export function rmsnormBackward(
  ctx: GpuContext,
  dx: Tensor,
  dw: Tensor,
  dOut: Tensor,
  x: Tensor,
  w: Tensor,
  rstd: Tensor,
  N: number,
  C: number,
  accumulateDx: boolean,
  layout: RmsnormLayout = rmsnormLayout(ctx),
): void {
  assertDistinct("rmsnormBackward", [dx, dw, dOut, x, w, rstd]);
  // Rows per chunk grow past DW_CHUNK only when the chunks would exceed the dispatch limit.
  const maxPerDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const rows = Math.max(DW_CHUNK, Math.ceil(N / maxPerDim));
  const chunks = Math.ceil(N / rows);
  // The partials' size is rmsnormScratchElements (the memory plan counts it from there).
  const dwGroups: [number, number] = [Math.ceil(C / 64), chunks];
  const partialName = "rmsnorm_backward_dw_partial";
  if (chunks <= 1) {
    // One chunk: add the column sums straight into dw.
    const tensors = [dw, dOut, x, rstd];
    ctx.launch(partialName, RMSNORM_BACKWARD_DW_PARTIAL_WGSL, tensors, [N, C, rows, 1], dwGroups);
  } else {
    const partials = partialsScratch(ctx, chunks * C);
    const tensors = [partials, dOut, x, rstd];
    ctx.launch(partialName, RMSNORM_BACKWARD_DW_PARTIAL_WGSL, tensors, [N, C, rows, 0], dwGroups);
    const sumGroups: [number] = [Math.ceil(C / 64)];
    ctx.launch("rmsnorm_backward_dw_sum", RMSNORM_BACKWARD_DW_SUM_WGSL, [dw, partials], [
      C,
      chunks,
    ], sumGroups);
  }
  const dxUniforms = [N, C, accumulateDx ? 1 : 0];
  const dxTensors = [dx, dOut, x, w, rstd];
  if (layout === "row") {
    const dxGroups = grid1d(N, 64, maxPerDim);
    const name = "rmsnorm_backward_dx_row";
    ctx.launch(name, RMSNORM_BACKWARD_DX_ROW_WGSL, dxTensors, dxUniforms, dxGroups);
  } else {
    const dxGroups = rowGroups(N, maxPerDim);
    ctx.launch("rmsnorm_backward_dx", RMSNORM_BACKWARD_DX_WGSL, dxTensors, dxUniforms, dxGroups);
  }
}
