/**
 * WGSL optimizer ops: the squared global gradient norm (fixed-order reduction, no atomics) and one
 * AdamW / RMSprop / SGD step over a whole arena in one dispatch, with `clip_grad_norm_` applied on
 * the device from that norm (no readback). The CPU reference is `src/cpu/optimizer.ts`, which
 * documents the update rules; the hyper tensor layout is `packHyper`'s (src/backend/ops.ts).
 *
 * Every binding is declared `read_write`, even those only read: WebGPU tracks usage per buffer,
 * and the tensors of one role share an arena buffer (gradNormSq and hyper sit beside the moments),
 * so a read-only binding next to a writable one of the same buffer fails validation.
 *
 * Arenas larger than the adapter's largest storage binding are processed in several dispatches
 * on views of the same buffer; the sum of squares keeps the same chunk layout either way, so its
 * result does not depend on the split. An arena larger than the largest buffer comes in pieces
 * (src/model/params.ts): the update runs per piece (elementwise, so the same bits), and the sum of
 * squares keeps the whole arena's chunks, each thread's running sum carried across a piece
 * boundary that cuts a chunk (SUM_SQUARES_PARTIAL_WGSL), so it adds the same numbers in the same
 * order as one buffer does.
 *
 * @module
 */

import { type GpuContext, type GpuTensor, grid1d } from "../context.ts";
import type { Tensor } from "../../backend/mod.ts";
import { chunkSize, NORM_CARRY_SLOTS, partialSlots } from "../../backend/mod.ts";

const WG = 256;

// partial: (count) -> total: (1), one workgroup, same fixed order as the partial pass.
export const SUM_SQUARES_TOTAL_WGSL = /* wgsl */ `
struct Params { count: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;
var<workgroup> sums: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < u.count; i += ${WG}u) { s += partial[i]; }
  sums[lid] = s;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { sums[lid] += sums[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { total[0] = sums[0]; }
}
`;

// g: the global elements [u.start, u.end) of a flat array of u.n (a whole arena, or one piece of an
// arena in several buffers, or one binding's worth of either) in chunks of u.chunk; partial:
// (partialSlots), one slot per chunk; carry: (2, 256). Workgroup w sums chunk c = u.firstSlot + w:
// thread t takes the chunk's elements c*chunk + t, + 256, ... in order, then a fixed tree. A chunk
// cut by the start of g resumes each thread's sum from carry half u.carryIn - 1; one cut by its
// end stores them in half u.carryOut - 1 for the next dispatch instead (the halves alternate, so
// a first workgroup's read never races a last one's write). So the sums, and their order, are the
// whole array's however it is cut.
export const SUM_SQUARES_PARTIAL_WGSL = /* wgsl */ `
struct Params { n: u32, chunk: u32, firstSlot: u32, start: u32, end: u32, carryIn: u32, carryOut: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> carry: array<f32>;
var<workgroup> sums: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let c = u.firstSlot + wid.x;
  let cs = c * u.chunk;
  let lo = max(cs, u.start);
  let hi = min(min(u.n, cs + u.chunk), u.end);
  var s = 0.0;
  if (wid.x == 0u && u.carryIn != 0u) { s = carry[(u.carryIn - 1u) * ${WG}u + lid]; }
  var i = cs + lid;
  if (i < lo) { i += (lo - i + ${WG - 1}u) / ${WG}u * ${WG}u; }
  for (; i < hi; i += ${WG}u) {
    let x = g[i - u.start];
    s += x * x;
  }
  if (wid.x == nwg.x - 1u && u.carryOut != 0u) {
    carry[(u.carryOut - 1u) * ${WG}u + lid] = s;
    return;
  }
  sums[lid] = s;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { sums[lid] += sums[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { partial[c] = sums[0]; }
}
`;

/**
 * total (1) = sum of squares of g (n): per-chunk sums into partial (≥ normScratchSlots(n)), then
 * one workgroup adds them in order. g may come in pieces (an arena split across buffers), one flat
 * array in order. `maxElements` (default: the adapter's largest binding) bounds the view each
 * dispatch binds, cut on a chunk boundary (tests lower it to exercise the split); only a piece
 * boundary cuts a chunk, and the carry keeps its sums whole.
 */
export function sumSquares(
  ctx: GpuContext,
  total: Tensor,
  partial: Tensor,
  g: Tensor | readonly Tensor[],
  n: number,
  maxElements = ctx.maxBindingElements,
): void {
  const pieces = (Array.isArray(g) ? g : [g]) as readonly GpuTensor[];
  const slots = partialSlots(n);
  const chunk = chunkSize(n);
  const carryAt = Math.ceil(slots / 64) * 64;
  if (partial.size < carryAt + NORM_CARRY_SLOTS) {
    throw new Error(
      `sumSquares: partial has ${partial.size} elements, needs normScratchSlots(n) = ` +
        `${carryAt + NORM_CARRY_SLOTS}`,
    );
  }
  if (chunk > maxElements) throw new Error(`sumSquares: chunk ${chunk} exceeds ${maxElements}`);
  // Bound apart (one buffer, disjoint ranges): a writable binding may not overlap another.
  const sums = ctx.view(partial as GpuTensor, 0, slots);
  const carry = ctx.view(partial as GpuTensor, carryAt, NORM_CARRY_SLOTS);
  let base = 0;
  let carried = 0; // the carry half (1 or 2) holding the sums of the chunk the last piece cut
  for (const piece of pieces) {
    const end = Math.min(n, base + piece.size);
    for (let lo = base; lo < end;) {
      const hi = lo + maxElements >= end ? end : Math.floor((lo + maxElements) / chunk) * chunk;
      const firstSlot = Math.floor(lo / chunk);
      const carryIn = lo % chunk !== 0 ? carried : 0;
      const carryOut = hi % chunk !== 0 && hi < n ? (carryIn === 1 ? 2 : 1) : 0;
      ctx.launch(
        "sumSquaresPartial",
        SUM_SQUARES_PARTIAL_WGSL,
        [ctx.view(piece, lo - base, hi - lo), sums, carry],
        [n, chunk, firstSlot, lo, hi, carryIn, carryOut],
        [Math.ceil(hi / chunk) - firstSlot],
      );
      carried = carryOut;
      lo = hi;
    }
    base += piece.size;
  }
  if (base < n) throw new Error(`sumSquares: g holds ${base} elements, fewer than n = ${n}`);
  ctx.launch("sumSquaresTotal", SUM_SQUARES_TOTAL_WGSL, [sums, total], [slots], [1]);
}

// Shared by the three optimizers: bindings gradNormSq (1) and hyper (16) are declared by each
// kernel; this returns clip_grad_norm_'s factor (1 when off or when the norm is within bounds).
const CLIP_WGSL = /* wgsl */ `
fn clipCoefficient(normSq: f32, maxNorm: f32) -> f32 {
  if (maxNorm > 0.0) {
    let coef = maxNorm / (sqrt(normSq) + 1e-6);
    if (coef < 1.0) { return coef; }
  }
  return 1.0;
}
`;

const INDEX_WGSL = /* wgsl */ `
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.n) { return; }
  let g0 = grads[i] * clipCoefficient(gradNormSq[0], hyper[9]);
`;

// params, grads, state1 (m), state2 (v): (n); gradNormSq: (1); hyper: (16) packHyper.
// torch.optim.AdamW single-tensor path: decoupled decay, lerp'd first moment, bias corrections.
export const ADAMW_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;
@group(0) @binding(5) var<storage, read_write> gradNormSq: array<f32>;
@group(0) @binding(6) var<storage, read_write> hyper: array<f32>;
${CLIP_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
${INDEX_WGSL}
  let lr = hyper[0];
  let beta2 = hyper[2];
  let p = params[i] * (1.0 - lr * hyper[4]);
  let m = state1[i] + (g0 - state1[i]) * hyper[11];
  let v = state2[i] * beta2 + hyper[12] * g0 * g0;
  state1[i] = m;
  state2[i] = v;
  let denom = sqrt(v) / hyper[6] + hyper[3];
  params[i] = p - hyper[5] * m / denom;
}
`;

// params, grads, state1 (square average), state2 (momentum buffer): (n); gradNormSq: (1);
// hyper: (16). torch.optim.RMSprop, not centered; weight decay is L2 added to the gradient.
export const RMSPROP_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;
@group(0) @binding(5) var<storage, read_write> gradNormSq: array<f32>;
@group(0) @binding(6) var<storage, read_write> hyper: array<f32>;
${CLIP_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
${INDEX_WGSL}
  let lr = hyper[0];
  let alpha = hyper[7];
  let momentum = hyper[8];
  let p = params[i];
  let g = g0 + hyper[4] * p;
  let v = alpha * state1[i] + hyper[13] * g * g;
  state1[i] = v;
  let avg = sqrt(v) + hyper[3];
  if (momentum != 0.0) {
    let buf = momentum * state2[i] + g / avg;
    state2[i] = buf;
    params[i] = p - lr * buf;
  } else {
    params[i] = p - lr * g / avg;
  }
}
`;

// params, grads, state1 (momentum buffer): (n); gradNormSq: (1); hyper: (16). torch.optim.SGD,
// dampening 0, not Nesterov: the buffer starts as the first gradient (hyper[10] = step = 1).
export const SGD_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;
@group(0) @binding(4) var<storage, read_write> gradNormSq: array<f32>;
@group(0) @binding(5) var<storage, read_write> hyper: array<f32>;
${CLIP_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
${INDEX_WGSL}
  let lr = hyper[0];
  let momentum = hyper[8];
  let p = params[i];
  let g = g0 + hyper[4] * p;
  if (momentum != 0.0) {
    var buf = g;
    if (hyper[10] > 1.0) { buf = momentum * state1[i] + g; }
    state1[i] = buf;
    params[i] = p - lr * buf;
  } else {
    params[i] = p - lr * g;
  }
}
`;

const KERNELS = {
  adamw: { name: "optimizerAdamw", wgsl: ADAMW_WGSL },
  rmsprop: { name: "optimizerRmsprop", wgsl: RMSPROP_WGSL },
  sgd: { name: "optimizerSgd", wgsl: SGD_WGSL },
} as const;

/**
 * One optimizer step over params, grads, state1, state2 (n) in one dispatch (several when n
 * exceeds `maxElements`, default the adapter's largest binding: then each binds views of the same
 * range). gradNormSq (1) comes from {@link sumSquares}; hyper (16) from `Backend.writeHyper`.
 */
export function optimizerStep(
  ctx: GpuContext,
  kind: "adamw" | "rmsprop" | "sgd",
  params: Tensor,
  grads: Tensor,
  state1: Tensor,
  state2: Tensor,
  gradNormSq: Tensor,
  hyper: Tensor,
  n: number,
  maxElements = ctx.maxBindingElements,
): void {
  const kernel = KERNELS[kind];
  if (!kernel) {
    throw new Error(`optimizerStep: unknown optimizer "${kind}"; use adamw, rmsprop or sgd`);
  }
  const arenas = kind === "sgd" ? [params, grads, state1] : [params, grads, state1, state2];
  const fits = arenas.every((t) => t.size <= maxElements);
  // Views start on 64-element (256-byte) boundaries.
  const slice = fits && n <= maxElements ? n : Math.floor(maxElements / 64) * 64;
  for (let offset = 0; offset < n; offset += slice) {
    const size = Math.min(slice, n - offset);
    const views = fits && size === n
      ? arenas
      : arenas.map((t) => ctx.view(t as GpuTensor, offset, size));
    ctx.launch(kernel.name, kernel.wgsl, [...views, gradNormSq, hyper], [size], grid1d(size, WG));
  }
}
