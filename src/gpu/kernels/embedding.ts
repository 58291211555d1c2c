/**
 * WGSL token embedding, forward (a row gather) and backward (a gather over the host-built token
 * index, see `tokenIndex` in src/backend/tokens.ts): each (v, c) of dTable sums its positions in
 * ascending order, so the result is bit-reproducible without atomics.
 *
 * @module
 */

import { type GpuContext, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { assertDistinct, INPUT_ACCESS, LINEAR_INDEX } from "./elementwise.ts";

// dst: (N, C); ids: (N) i32; table: (V, C). One invocation per output element. An id outside
// [0, V) (the host validates ids; this only keeps the read in bounds) gives a zero row.
export const EMBEDDING_FORWARD_WGSL = `struct Params { N: u32, C: u32, V: u32 }
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
    dst[i] = 0.0;
    return;
  }
  dst[i] = table[u32(id) * u.C + c];
}`;

// dTable: (V, C) accumulated; dOut: (N, C); order: (N) i32; offsets: (V+1) i32.
// One invocation per (v, c); ids with no position leave their row untouched.
export const EMBEDDING_BACKWARD_WGSL = `struct Params { V: u32, C: u32 }
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
  let start = offsets[v];
  let end = offsets[v + 1u];
  if (start >= end) { return; }
  var sum = dTable[i];
  for (var j = start; j < end; j++) {
    sum += dOut[u32(order[j]) * u.C + c];
  }
  dTable[i] = sum;
}`;

/** out (N,C) = table (V,C)[ids (N)]; V is read from the size of `table`. */
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
  ctx.launch(
    "embedding_forward",
    EMBEDDING_FORWARD_WGSL,
    [out, ids, table],
    [N, C, V],
    grid1d(N * C, 256),
  );
}

/** dTable (V,C) += per-id sums of dOut (N,C) over the token index (order, offsets). */
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
  ctx.launch(
    "embedding_backward",
    EMBEDDING_BACKWARD_WGSL,
    [dTable, dOut, order, offsets],
    [V, C],
    grid1d(V * C, 256),
  );
}
