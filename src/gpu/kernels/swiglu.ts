/**
 * WGSL SwiGLU activation of the Llama MLP, `silu(gate) * up`, forward and backward, one
 * invocation per element (see src/cpu/swiglu.ts for the formulas).
 *
 * @module
 */

import { type GpuContext, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { assertDistinct, INPUT_ACCESS, LINEAR_INDEX } from "./elementwise.ts";

// exp of -|g| only, so no overflow for large |g| (WGSL leaves overflowing exp undefined).
const SIGMOID = `fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, g >= 0.0);
}`;

// dst, gate, up: (n)
export const SWIGLU_FORWARD_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> gate: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> up: array<f32>;
${SIGMOID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.n) { return; }
  let g = gate[i];
  dst[i] = g * sigmoid(g) * up[i];
}`;

// dGate, dUp, dOut, gate, up: (n)
export const SWIGLU_BACKWARD_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dGate: array<f32>;
@group(0) @binding(2) var<storage, read_write> dUp: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> dOut: array<f32>;
@group(0) @binding(4) var<storage, ${INPUT_ACCESS}> gate: array<f32>;
@group(0) @binding(5) var<storage, ${INPUT_ACCESS}> up: array<f32>;
${SIGMOID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.n) { return; }
  let g = gate[i];
  let d = dOut[i];
  let s = sigmoid(g);
  dUp[i] = d * g * s;
  dGate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
}`;

/** out (n) = silu(gate) * up. */
export function swigluForward(
  ctx: GpuContext,
  out: Tensor,
  gate: Tensor,
  up: Tensor,
  n: number,
): void {
  assertDistinct("swigluForward", [out, gate, up]);
  ctx.launch("swiglu_forward", SWIGLU_FORWARD_WGSL, [out, gate, up], [n], grid1d(n, 256));
}

/** dGate, dUp (n) = gradients of silu(gate) * up given dOut (n); overwritten. */
export function swigluBackward(
  ctx: GpuContext,
  dGate: Tensor,
  dUp: Tensor,
  dOut: Tensor,
  gate: Tensor,
  up: Tensor,
  n: number,
): void {
  assertDistinct("swigluBackward", [dGate, dUp, dOut, gate, up]);
  ctx.launch(
    "swiglu_backward",
    SWIGLU_BACKWARD_WGSL,
    [dGate, dUp, dOut, gate, up],
    [n],
    grid1d(n, 256),
  );
}
