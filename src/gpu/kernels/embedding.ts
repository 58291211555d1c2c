/**
 * WGSL token embedding, forward (a row gather) and backward (a gather over the host-built token
 * index, see `tokenIndex` in src/backend/tokens.ts): each (v, c) of dTable sums its positions in
 * ascending order, so the result is bit-reproducible without atomics.
 *
 * @module
 */

import { type GpuContext, type GpuTensor, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { assertDistinct, INPUT_ACCESS, LINEAR_INDEX } from "./elementwise.ts";
import { type F16Mode, weightLoad } from "./weight_load.ts";

// dst: (N, C); ids: (N) i32; table: rows first..first+count of the (V, C) embedding. One
// invocation per output element; a row whose id lies in another piece of the table is left to
// that piece's dispatch. An id outside [0, V) (the host validates ids; this only keeps the read
// in bounds) gives a zero row, written by the piece with first = 0.
export const EMBEDDING_FORWARD_WGSL =
  `struct Params { N: u32, C: u32, V: u32, first: u32, count: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> ids: array<i32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> table: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.N * u.C) { return; }
  let n = i / u.C;
  let c = i - n * u.C;
  let id = ids[n];
  if (id < 0 || u32(id) >= u.V) {
    if (u.first == 0u) { dst[i] = 0.0; }
    return;
  }
  let row = u32(id);
  if (row < u.first || row >= u.first + u.count) { return; }
  dst[i] = table[(row - u.first) * u.C + c];
}`;

// dTable: rows first..first+V of the (V_total, C) gradient, accumulated; dOut: (N, C);
// order: (N) i32; offsets: (V_total+1) i32. One invocation per (v, c) of the piece; ids with no
// position leave their row untouched.
export const EMBEDDING_BACKWARD_WGSL = `struct Params { V: u32, C: u32, first: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dTable: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> dOut: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> order: array<i32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> offsets: array<i32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.V * u.C) { return; }
  let v = i / u.C;
  let c = i - v * u.C;
  let start = offsets[u.first + v];
  let end = offsets[u.first + v + 1u];
  if (start >= end) { return; }
  var sum = dTable[i];
  for (var j = start; j < end; j++) {
    sum += dOut[u32(order[j]) * u.C + c];
  }
  dTable[i] = sum;
}`;

/**
 * The forward gather of a frozen table held as bf16 or f16 (and the tied LM head's weight): the
 * same kernel with the table read through {@link weightLoad}, widened exactly to f32. Returns
 * the kernel name (registered in src/gpu/shader_catalog.ts) and its WGSL.
 */
export function embeddingForwardHalf(dtype: "bf16" | "f16", mode: F16Mode): [string, string] {
  const load = weightLoad("table", 3, dtype, false, {
    f16Mode: dtype === "f16" ? mode : undefined,
    access: INPUT_ACCESS,
  });
  const wgsl = load.directives + EMBEDDING_FORWARD_WGSL
    .replace(/@group\(0\) @binding\(3\)[^\n]*\n/, load.decl + "\n")
    .replace(
      "dst[i] = table[(row - u.first) * u.C + c];",
      `dst[i] = ${load.at("(row - u.first) * u.C + c")};`,
    );
  return [`embedding_forward${load.tag}`, wgsl];
}

/**
 * Rows of a (V, C) table in pieces that each fit one storage binding (one piece when it fits):
 * [first row, row count], aligned so each piece is a bindable view.
 */
function tablePieces(
  ctx: GpuContext,
  V: number,
  C: number,
  bytesPerElement = 4,
): Array<[number, number]> {
  // A binding holds maxBindingElements f32 words; a half table packs two elements per word.
  const perBinding = ctx.maxBindingElements * (4 / bytesPerElement);
  if (V * C <= perBinding) return [[0, V]];
  const align = 256 / bytesPerElement; // elements per 256-byte binding offset
  const unit = align / gcd(C % align || align, align);
  const rows = Math.floor(Math.floor(perBinding / C) / unit) * unit;
  if (rows < 1) throw new Error(`embedding: a row of ${C} elements exceeds one binding`);
  const pieces: Array<[number, number]> = [];
  for (let first = 0; first < V; first += rows) pieces.push([first, Math.min(rows, V - first)]);
  return pieces;
}
const gcd = (a: number, b: number): number => b === 0 ? a : gcd(b, a % b);

/**
 * out (N,C) = table (V,C)[ids (N)]; V is read from the size of `table`. A table larger than one
 * storage binding is read in pieces of rows, one dispatch each.
 */
export function embeddingForward(
  ctx: GpuContext,
  out: Tensor,
  ids: Tensor,
  table: Tensor,
  N: number,
  C: number,
): void {
  assertDistinct("embeddingForward", [out, ids, table]);
  const V = Math.floor(table.size / C);
  const half = table.dtype === "bf16" || table.dtype === "f16";
  const pieces = tablePieces(ctx, V, C, half ? 2 : 4);
  const [name, wgsl] = half
    ? embeddingForwardHalf(table.dtype as "bf16" | "f16", ctx.f16Mode)
    : ["embedding_forward", EMBEDDING_FORWARD_WGSL];
  for (const [first, count] of pieces) {
    const piece = pieces.length === 1 ? table : ctx.view(table as GpuTensor, first * C, count * C);
    ctx.launch(
      name,
      wgsl,
      [out, ids, piece],
      [N, C, V, first, count],
      grid1d(N * C, 256),
    );
  }
}

/**
 * dTable (V,C) += per-id sums of dOut (N,C) over the token index (order, offsets); in pieces of
 * rows when dTable exceeds one storage binding.
 */
export function embeddingBackward(
  ctx: GpuContext,
  dTable: Tensor,
  dOut: Tensor,
  order: Tensor,
  offsets: Tensor,
  V: number,
  C: number,
): void {
  assertDistinct("embeddingBackward", [dTable, dOut, order, offsets]);
  const pieces = tablePieces(ctx, V, C);
  for (const [first, count] of pieces) {
    const piece = pieces.length === 1
      ? dTable
      : ctx.view(dTable as GpuTensor, first * C, count * C);
    ctx.launch(
      "embedding_backward",
      EMBEDDING_BACKWARD_WGSL,
      [piece, dOut, order, offsets],
      [count, C, first],
      grid1d(count * C, 256),
    );
  }
}
