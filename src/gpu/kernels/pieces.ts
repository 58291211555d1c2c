/**
 * WGSL of the two kernels that bind a tensor larger than the adapter's largest storage binding in
 * pieces (src/gpu/split.ts orchestrates them): a strided copy of a block of columns, and a matmul
 * that continues a partial sum over k, so a sum split across pieces of k gives the bits of the
 * unsplit one.
 *
 * Inputs are declared `read_write` although never written: tensors share arena buffers, and
 * WebGPU forbids binding one buffer as both `read` and `read_write` in a dispatch.
 *
 * @module
 */

import { type GpuContext, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";

const WG = 256;

/**
 * dst[r * dstStride + dstOffset + c] = src[r * srcStride + srcOffset + c] for r < rows, c < cols:
 * a block of columns gathered into a dense tensor or scattered back. One invocation per element.
 */
export const COPY_BLOCK_WGSL = /* wgsl */ `
struct Params { rows: u32, cols: u32, srcStride: u32, srcOffset: u32, dstStride: u32, dstOffset: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.rows * u.cols) { return; }
  let r = i / u.cols;
  let c = i - r * u.cols;
  dst[r * u.dstStride + u.dstOffset + c] = src[r * u.srcStride + u.srcOffset + c];
}
`;

/**
 * One piece of k of out (M,N) = a @ b (+ bias) (+ out when accumulating): the sum over k in
 * ascending order of a[m,k] * b[k,n], one multiply-add per step as the matmul kernels sum,
 * starting from 0 for the first piece and from the partial sum the previous piece stored in
 * `partial` otherwise. Every piece but the last stores its partial sum; the last adds the bias
 * and the old out the way the matmul kernels do and writes out. a: (M,K) or (K,M) when transA;
 * b: (K,N); partial (M,N); bias (N) when `hasBias`. One invocation per output element.
 */
export function matmulContinueWgsl(transA: boolean): string {
  const aAt = transA ? "a[kk * u.M + m]" : "a[m * u.K + kk]";
  return /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, cont: u32, last: u32, accumulate: u32, hasBias: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> outBuf: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> biasBuf: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.M * u.N) { return; }
  let m = i / u.N;
  let n = i - m * u.N;
  var acc = 0.0;
  if (u.cont != 0u) { acc = partial[i]; }
  for (var kk = 0u; kk < u.K; kk++) {
    acc += ${aAt} * b[kk * u.N + n];
  }
  if (u.last == 0u) {
    partial[i] = acc;
    return;
  }
  var value = acc;
  if (u.hasBias != 0u) { value += biasBuf[n]; }
  if (u.accumulate != 0u) { value = outBuf[i] + value; }
  outBuf[i] = value;
}
`;
}

/** Pipeline names and sources of {@link matmulContinueWgsl}, for the shader catalog. */
export const MATMUL_CONTINUE_KERNELS = {
  matmul_continue_NN: matmulContinueWgsl(false),
  matmul_continue_TN: matmulContinueWgsl(true),
} as const;

const maxGroups = (ctx: GpuContext) => ctx.limits.maxComputeWorkgroupsPerDimension;

/** Records the strided block copy of {@link COPY_BLOCK_WGSL}. */
export function copyBlock(
  ctx: GpuContext,
  dst: Tensor,
  src: Tensor,
  rows: number,
  cols: number,
  layout: { srcStride: number; srcOffset: number; dstStride: number; dstOffset: number },
): void {
  const { srcStride, srcOffset, dstStride, dstOffset } = layout;
  ctx.launch(
    "copy_block",
    COPY_BLOCK_WGSL,
    [dst, src],
    [rows, cols, srcStride, srcOffset, dstStride, dstOffset],
    grid1d(rows * cols, WG, maxGroups(ctx)),
  );
}

/** How one piece of {@link matmulContinue} starts and ends. */
export interface ContinuePiece {
  /** Continue the partial sum of the previous piece (false for the first). */
  cont: boolean;
  /** The last piece: finish into out. */
  last: boolean;
  accumulate: boolean;
  bias?: Tensor;
}

/** Records one piece of k of out (M,N) (+)= a @ b (+ bias), see {@link matmulContinueWgsl}. */
export function matmulContinue(
  ctx: GpuContext,
  out: Tensor,
  partial: Tensor,
  a: Tensor,
  b: Tensor,
  shape: { m: number; n: number; k: number; transA: boolean },
  piece: ContinuePiece,
): void {
  const { m, n, k, transA } = shape;
  const name = transA ? "matmul_continue_TN" : "matmul_continue_NN";
  const flag = (x: boolean) => x ? 1 : 0;
  ctx.launch(
    name,
    MATMUL_CONTINUE_KERNELS[name],
    [out, partial, a, b, piece.bias ?? partial],
    [m, n, k, flag(piece.cont), flag(piece.last), flag(piece.accumulate), flag(!!piece.bias)],
    grid1d(m * n, WG, maxGroups(ctx)),
  );
}
