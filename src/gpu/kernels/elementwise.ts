/**
 * WGSL elementwise ops: residual add (out of place and in place), copy (optionally accumulating)
 * and fill, plus the binding helpers the other pointwise kernels share.
 *
 * Every kernel is 1-D over n elements with workgroups of 256, folded into two dimensions by
 * `grid1d` when n needs more than 65535 workgroups.
 *
 * @module
 */

import { f32bits, type GpuContext, type GpuTensor, grid1d } from "../context.ts";
import type { DropoutArgs, Tensor } from "../../backend/mod.ts";
import { dropoutMultiplier, dropThreshold } from "../../backend/mod.ts";

/**
 * Access mode of the storage bindings a kernel only reads. wgpu (Deno) tracks usage per whole
 * GPUBuffer within a dispatch, and a buffer bound as `read_write` may not also be bound `read`,
 * even at a disjoint range; tensors share arena buffers, so an input declared `read` next to an
 * output of the same arena fails validation. Several `read_write` bindings of one buffer are
 * allowed, so inputs are declared `read_write` too (the kernels never write them).
 */
export const INPUT_ACCESS = "read_write";

/** The linear invocation index of a `grid1d` dispatch of workgroups of 256 (WGSL snippet). */
export const LINEAR_INDEX = "gid.x + gid.y * nwg.x * 256u";

const ENTRY = `@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${LINEAR_INDEX};
  if (i >= u.n) { return; }`;

/** True when two tensors are the same range of one buffer. */
export function sameTensor(a: Tensor, b: Tensor): boolean {
  const x = a as GpuTensor, y = b as GpuTensor;
  return x.bufferId === y.bufferId && x.offset === y.offset;
}

/** Throws when two of `tensors` overlap: a dispatch may not bind one range twice if writable. */
export function assertDistinct(op: string, tensors: readonly Tensor[]): void {
  for (let i = 0; i < tensors.length; i++) {
    for (let j = i + 1; j < tensors.length; j++) {
      const a = tensors[i] as GpuTensor, b = tensors[j] as GpuTensor;
      if (
        a.bufferId === b.bufferId && a.offset < b.offset + b.size * 4 &&
        b.offset < a.offset + a.size * 4
      ) {
        throw new Error(`${op}: arguments ${i} and ${j} overlap; pass distinct tensors`);
      }
    }
  }
}

// dst, a, b: (n)
export const ADD_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> a: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> b: array<f32>;
${ENTRY}
  dst[i] = a[i] + b[i];
}`;

// dst, b: (n); dst += b (add in place, and copy with accumulate)
export const ADD_INPLACE_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> b: array<f32>;
${ENTRY}
  dst[i] = dst[i] + b[i];
}`;

// dst, a: (n); dst = a + a (add with a === b)
export const DOUBLE_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> a: array<f32>;
${ENTRY}
  dst[i] = a[i] + a[i];
}`;

// dst: (n); dst = dst + dst (add with out === a === b)
export const DOUBLE_INPLACE_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
${ENTRY}
  dst[i] = dst[i] + dst[i];
}`;

// dst, a: (n)
export const COPY_WGSL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> a: array<f32>;
${ENTRY}
  dst[i] = a[i];
}`;

// dst: (n)
export const FILL_WGSL = `struct Params { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
${ENTRY}
  dst[i] = u.value;
}`;

/** lowbias32 (src/cpu/elementwise.ts has the same integers). */
const MIX32_WGSL = `fn mix32(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}`;

/** dst, x: (n); seed: (1) u32. dst (+)= keep(i) ? x * mult : 0, keep = hash ≥ threshold. */
function dropoutWgsl(accumulate: boolean): string {
  return `struct Params { n: u32, salt: u32, threshold: u32, mult: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> x: array<f32>;
@group(0) @binding(3) var<storage, ${INPUT_ACCESS}> seed: array<u32>;
${MIX32_WGSL}
${ENTRY}
  let key = mix32(mix32(seed[0] ^ 0x9e3779b9u) ^ u.salt);
  var v = 0.0;
  if (mix32(mix32(key ^ i)) >= u.threshold) { v = x[i] * u.mult; }
  dst[i] = ${accumulate ? "dst[i] + v" : "v"};
}`;
}

/** dst, x: (n). dst (+)= x * mult (dropout with p = 0). */
function scaleWgsl(accumulate: boolean): string {
  return `struct Params { n: u32, mult: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, ${INPUT_ACCESS}> x: array<f32>;
${ENTRY}
  let v = x[i] * u.mult;
  dst[i] = ${accumulate ? "dst[i] + v" : "v"};
}`;
}

/** The dropout and scale kernels, by name (the shader catalog compiles each). */
export const DROPOUT_KERNELS: Readonly<Record<string, string>> = {
  dropout: dropoutWgsl(false),
  dropout_acc: dropoutWgsl(true),
  scale: scaleWgsl(false),
  scale_acc: scaleWgsl(true),
};

/** LoRA's seeded dropout fused with a scale (src/backend/op_args.ts DropoutArgs). */
export function dropout(ctx: GpuContext, a: DropoutArgs): void {
  assertDistinct("dropout", [a.out, a.x]);
  const mult = f32bits(dropoutMultiplier(a.p, a.scale ?? 1));
  const acc = a.accumulate ? "_acc" : "";
  const groups = grid1d(a.n, 256);
  if (a.p === 0) {
    ctx.launch(`scale${acc}`, DROPOUT_KERNELS[`scale${acc}`], [a.out, a.x], [a.n, mult], groups);
    return;
  }
  if (!a.seed) throw new Error("dropout with p > 0 needs its seed tensor");
  const uniforms = [a.n, (a.salt ?? 0) >>> 0, dropThreshold(a.p), mult];
  ctx.launch(
    `dropout${acc}`,
    DROPOUT_KERNELS[`dropout${acc}`],
    [a.out, a.x, a.seed],
    uniforms,
    groups,
  );
}

function checkOverlap(op: string, out: Tensor, a: Tensor): void {
  if (!sameTensor(out, a)) assertDistinct(op, [out, a]);
}

/** out (n) = a + b. `out` may be `a` or `b` (in place), and `a` may be `b`. */
export function add(ctx: GpuContext, out: Tensor, a: Tensor, b: Tensor, n: number): void {
  checkOverlap("add", out, a);
  checkOverlap("add", out, b);
  checkOverlap("add", a, b);
  const groups = grid1d(n, 256);
  const outIsA = sameTensor(out, a), outIsB = sameTensor(out, b), aIsB = sameTensor(a, b);
  if (outIsA && outIsB) {
    ctx.launch("add_double_inplace", DOUBLE_INPLACE_WGSL, [out], [n], groups);
  } else if (aIsB) ctx.launch("add_double", DOUBLE_WGSL, [out, a], [n], groups);
  else if (outIsA) ctx.launch("add_inplace", ADD_INPLACE_WGSL, [out, b], [n], groups);
  else if (outIsB) ctx.launch("add_inplace", ADD_INPLACE_WGSL, [out, a], [n], groups);
  else ctx.launch("add", ADD_WGSL, [out, a, b], [n], groups);
}

/** out (n) = a, or out += a with `accumulate`. */
export function copy(ctx: GpuContext, out: Tensor, a: Tensor, n: number, accumulate = false): void {
  if (accumulate) return add(ctx, out, out, a, n);
  if (sameTensor(out, a)) return;
  checkOverlap("copy", out, a);
  ctx.launch("copy", COPY_WGSL, [out, a], [n], grid1d(n, 256));
}

/** Sets out[0..n) to `value` (rounded to f32). */
export function fill(ctx: GpuContext, out: Tensor, value: number, n: number): void {
  ctx.launch("fill", FILL_WGSL, [out], [n, f32bits(value)], grid1d(n, 256));
}
