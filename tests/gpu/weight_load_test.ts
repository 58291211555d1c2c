/**
 * Every widening of src/gpu/kernels/weight_load.ts (bf16; f16 by unpack2x16float and, where the
 * device has `shader-f16`, by WGSL's f16 type), scalar and four-element loads, against the host's
 * exact widening (src/io/half.ts) over values that cover normals of both signs, signed zero,
 * subnormals, the largest finite values and infinities. The f16 path once went through
 * `bitcast<vec2<f16>>(u32)`, which naga compiles to a wrong value without an error: this test is
 * what catches such a miscompile.
 *
 * @module
 */

import assert from "node:assert/strict";
import { gpuTest } from "../helpers.ts";
import type { GpuContext, GpuTensor } from "../../src/gpu/context.ts";
import { type F16Mode, weightLoad } from "../../src/gpu/kernels/weight_load.ts";
import { decode16 } from "../../src/io/half.ts";

/** 16-bit patterns worth widening, as raw bits (so subnormals and infinities are exact). */
function patterns(dtype: "bf16" | "f16"): Uint16Array {
  const special = dtype === "f16"
    ? [
      0x0000,
      0x8000,
      0x0001,
      0x8001,
      0x03ff,
      0x0400,
      0x3c00,
      0xc000,
      0x7bff,
      0xfbff,
      0x7c00,
      0xfc00,
    ]
    : [
      0x0000,
      0x8000,
      0x0001,
      0x8001,
      0x007f,
      0x0080,
      0x3f80,
      0xc000,
      0x7f7f,
      0xff7f,
      0x7f80,
      0xff80,
    ];
  const out = new Uint16Array(256);
  out.set(special);
  let s = 12345;
  for (let i = special.length; i < out.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    let h = s >>> 16;
    // Keep NaN patterns out: their payload is not required to survive widening.
    if (dtype === "f16" && (h & 0x7c00) === 0x7c00) h &= 0xbfff;
    if (dtype === "bf16" && (h & 0x7f80) === 0x7f80) h &= 0xbfff;
    out[i] = h;
  }
  return out;
}

async function widenOnDevice(
  ctx: GpuContext,
  dtype: "bf16" | "f16",
  mode: F16Mode,
  vec: boolean,
  bits: Uint16Array,
): Promise<{ scalar: Float32Array; four: Float32Array }> {
  const n = bits.length;
  const load = weightLoad("w", 2, dtype, vec, { f16Mode: mode });
  const wgsl = load.directives + `
@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${load.decl}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= u.x) { return; }
  out[i] = ${load.at("i")};
  if ((i & 3u) == 0u) {
    let q = ${load.at4("i")};
    out[u.x + i] = q.x; out[u.x + i + 1u] = q.y; out[u.x + i + 2u] = q.z; out[u.x + i + 3u] = q.w;
  }
}`;
  const weights = ctx.alloc("parameters", n, dtype) as GpuTensor;
  ctx.device.queue.writeBuffer(weights.buffer, weights.offset, bits.buffer, 0, bits.byteLength);
  const out = ctx.alloc("activations", 2 * n) as GpuTensor;
  ctx.launch(
    `weight_load_test${load.tag}${vec ? "_vec" : ""}`,
    wgsl,
    [out, weights],
    [n, 0, 0, 0],
    [
      Math.ceil(n / 64),
    ],
  );
  const all = new Float32Array(await ctx.read(out));
  return { scalar: all.slice(0, n), four: all.slice(n) };
}

function sameBits(got: Float32Array, want: Float32Array, label: string) {
  const g = new Uint32Array(got.buffer), w = new Uint32Array(want.buffer);
  for (let i = 0; i < w.length; i++) {
    assert(
      g[i] === w[i],
      `${label}: element ${i} widened to ${got[i]} (0x${g[i].toString(16)}), ` +
        `expected ${want[i]} (0x${w[i].toString(16)})`,
    );
  }
}

gpuTest("every weight widening equals the host's exact widening, bit for bit", async (gpu) => {
  const ctx = gpu.ctx;
  const variants: Array<["bf16" | "f16", F16Mode]> = [["bf16", "unpack"], ["f16", "unpack"]];
  if (ctx.gpu.shaderF16) variants.push(["f16", "native"]);
  for (const [dtype, mode] of variants) {
    const bits = patterns(dtype);
    const want = decode16(
      new Uint8Array(bits.buffer),
      0,
      bits.length,
      dtype === "bf16" ? "BF16" : "F16",
    );
    for (const vec of [false, true]) {
      const label = `${dtype} ${mode} ${vec ? "vec4" : "scalar"}`;
      const { scalar, four } = await widenOnDevice(ctx, dtype, mode, vec, bits);
      // f16 subnormals: WGSL lets an implementation flush them in f16 arithmetic, not in a
      // conversion to f32; the host widening is exact, so any flush shows here.
      sameBits(scalar, want, `${label} at()`);
      sameBits(four, want, `${label} at4()`);
    }
  }
});
