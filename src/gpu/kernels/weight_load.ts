/**
 * WGSL snippets that read a weight operand stored in its checkpoint's precision and widen it to
 * f32 inside the kernel (issue 12 item 2), for any kernel that reads a frozen weight: matmul's
 * weight operand, the embedding gather. A half tensor holds 2 bytes per element, two elements per
 * u32 word (element 2w in the low half of word w, 2w+1 in the high half: little-endian, as
 * safetensors stores them), bound as `array<u32>` or, for four-element loads, `array<vec2<u32>>`.
 *
 * Widening is exact in every form:
 * - bf16: the top 16 bits of an f32, so `bitcast<f32>(bits << 16u)`;
 * - f16 with `shader-f16`: the binding is declared `array<vec2<f16>>` (`array<vec4<f16>>` for
 *   four-element loads), the same bytes, and each element converted with `f32(...)`;
 * - f16 without it: `unpack2x16float(word)` (WGSL core).
 * Not `bitcast<vec2<f16>>(word)`: naga (wgpu 29, Deno 2.9) does not implement width-changing
 * bitcasts (gfx-rs/wgpu#8896, #4403) and types the result as f32, so `vec2<f32>(bitcast<
 * vec2<f16>>(w))` silently splatted the word read as one f32 (measured on llvmpipe: the pair
 * (1, -2) read as (-2.0037, -2.0037); tests/gpu/weight_load_test.ts).
 * An f32 operand gets the plain `array<f32>` / `array<vec4<f32>>` loads kernels already use, so
 * their f32 WGSL text is unchanged.
 *
 * @module
 */

/** How a weight is stored on the device. `f16` needs the mode of its widening. */
export type WeightDType = "f32" | "bf16" | "f16";

/** How f16 words are widened: `shader-f16`'s f16 type, or the core `unpack2x16float`. */
export type F16Mode = "native" | "unpack";

/** The WGSL pieces of one weight binding. */
export interface WeightLoad {
  /** Module-scope lines: `enable f16;` when needed (must come first in the module). */
  directives: string;
  /** The binding declaration and the load helpers. */
  decl: string;
  /** An f32 expression: element `idx` (a u32 expression). */
  at(idx: string): string;
  /** A vec4<f32> expression: elements idx..idx+3; idx a multiple of 4 when `vec`. */
  at4(idx: string): string;
  /** Part of a kernel name that tells the variant apart (`""` for f32). */
  tag: string;
}

/**
 * The WGSL that reads weight `name` at `binding` stored as `dtype`. `vec`: the operand is read
 * four aligned elements at a time (the tensor's size and every four-element index a multiple of
 * 4). `access` is the storage access the kernel binds its inputs with.
 */
export function weightLoad(
  name: string,
  binding: number,
  dtype: WeightDType,
  vec: boolean,
  options: { f16Mode?: F16Mode; access?: string } = {},
): WeightLoad {
  const access = options.access ?? "read_write";
  if (dtype === "f32") {
    return {
      directives: "",
      decl: `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${
        vec ? "vec4<f32>" : "f32"
      }>;`,
      at: (idx) => (vec ? `${name}[(${idx}) >> 2u][(${idx}) & 3u]` : `${name}[${idx}]`),
      at4: (idx) =>
        vec
          ? `${name}[(${idx}) >> 2u]`
          : `vec4<f32>(${name}[${idx}], ${name}[${idx} + 1u], ${name}[${idx} + 2u], ${name}[${idx} + 3u])`,
      tag: "",
    };
  }
  const mode = options.f16Mode ?? "unpack";
  if (dtype === "f16" && mode === "native") return nativeF16Load(name, binding, vec, access);
  const pair = `${name}_pair`;
  const word = `${name}_word`;
  // pair(w): the two elements of word w as vec2<f32> (low half first).
  const pairFn = dtype === "bf16"
    ? `fn ${pair}(w: u32) -> vec2<f32> {\n` +
      `  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));\n}`
    : `fn ${pair}(w: u32) -> vec2<f32> { return unpack2x16float(w); }`;
  const decl = [
    `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${
      vec ? "vec2<u32>" : "u32"
    }>;`,
    pairFn,
    vec
      ? `fn ${word}(i: u32) -> u32 { return ${name}[i >> 2u][(i >> 1u) & 1u]; }`
      : `fn ${word}(i: u32) -> u32 { return ${name}[i >> 1u]; }`,
    `fn ${name}_at(i: u32) -> f32 { return ${pair}(${word}(i))[i & 1u]; }`,
    vec
      ? `fn ${name}_at4(i: u32) -> vec4<f32> {\n` +
        `  let w = ${name}[i >> 2u];\n  return vec4<f32>(${pair}(w.x), ${pair}(w.y));\n}`
      : scalarAt4(name),
  ].join("\n");
  return {
    directives: "",
    decl,
    at: (idx) => `${name}_at(${idx})`,
    at4: (idx) => `${name}_at4(${idx})`,
    tag: dtype === "bf16" ? "_wbf16" : "_wf16u",
  };
}

/** at4 from four scalar loads (a binding read one element at a time). */
function scalarAt4(name: string): string {
  return `fn ${name}_at4(i: u32) -> vec4<f32> {\n` +
    `  return vec4<f32>(${name}_at(i), ${name}_at(i + 1u), ${name}_at(i + 2u), ${name}_at(i + 3u));\n}`;
}

/**
 * f16 through `shader-f16`: the words bound as `array<vec2<f16>>` (scalar loads: element i is
 * component i & 1 of entry i >> 1, low half first as in the u32 layout) or `array<vec4<f16>>`
 * (four-element loads, 8 bytes an entry like `vec2<u32>`), converted with `f32(...)`.
 */
function nativeF16Load(name: string, binding: number, vec: boolean, access: string): WeightLoad {
  const decl = [
    `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${
      vec ? "vec4<f16>" : "vec2<f16>"
    }>;`,
    vec
      ? `fn ${name}_at(i: u32) -> f32 { return f32(${name}[i >> 2u][i & 3u]); }`
      : `fn ${name}_at(i: u32) -> f32 { return f32(${name}[i >> 1u][i & 1u]); }`,
    vec
      ? `fn ${name}_at4(i: u32) -> vec4<f32> { return vec4<f32>(${name}[i >> 2u]); }`
      : scalarAt4(name),
  ].join("\n");
  return {
    directives: "enable f16;\n",
    decl,
    at: (idx) => `${name}_at(${idx})`,
    at4: (idx) => `${name}_at4(${idx})`,
    tag: "_wf16",
  };
}

/** Bytes of `size` elements of `dtype` on the device (half tensors round up to whole u32 words). */
export function weightBytes(dtype: WeightDType, size: number): number {
  return dtype === "f32" ? size * 4 : Math.ceil(size / 2) * 4;
}
