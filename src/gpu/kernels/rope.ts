/**
 * WGSL rotary position embedding in place, HF rotate-half convention (see src/cpu/rope.ts):
 * for i < D/2, with x1 = x[i], x2 = x[i + D/2] of a head,
 *
 *   x[i] = x1 * cos - x2 * sin,   x[i + D/2] = x2 * cos + x1 * sin
 *
 * at position row % T. The inverse (the backward) uses -sin. One invocation per pair, so each
 * invocation reads and writes only its own two elements and the in-place update is race-free.
 *
 * @module
 */

import { f32bits, type GpuContext, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { assertDistinct, INPUT_ACCESS, LINEAR_INDEX } from "./elementwise.ts";

// x: (BT, H, D) in place; cos, sin: (T, D/2)
export const ROPE_WGSL = `struct Params { BT: u32, T: u32, H: u32, D: u32, sign: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> cosTable: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> sinTable: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = ${LINEAR_INDEX};
  let halfD = u.D / 2u;
  if (p >= u.BT * u.H * halfD) { return; }
  let head = p / halfD;            // (row, h) flattened
  let i = p - head * halfD;
  let row = head / u.H;
  let t = (row % u.T) * halfD + i;
  let c = cosTable[t];
  let s = u.sign * sinTable[t];
  let lo = head * u.D + i;
  let x1 = x[lo];
  let x2 = x[lo + halfD];
  x[lo] = x1 * c - x2 * s;
  x[lo + halfD] = x2 * c + x1 * s;
}`;

/** Rotates x (BT, H, D) in place by cos, sin (T, D/2); by the opposite angle when `inverse`. */
export function rope(
  ctx: GpuContext,
  x: Tensor,
  cos: Tensor,
  sin: Tensor,
  BT: number,
  T: number,
  H: number,
  D: number,
  inverse: boolean,
): void {
  if (D % 2 !== 0) throw new Error(`rope: head dimension ${D} must be even`);
  assertDistinct("rope", [x, cos, sin]);
  ctx.launch(
    "rope",
    ROPE_WGSL,
    [x, cos, sin],
    [BT, T, H, D, f32bits(inverse ? -1 : 1)],
    grid1d(BT * H * (D / 2), 256),
  );
}
