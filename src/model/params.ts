/**
 * The parameter table: every weight under its Hugging Face name, laid out in one arena per role
 * (parameters, gradients, optimizer moments) at the same offsets, so the optimizer is one
 * dispatch over the arena and a gradient is found at its parameter's offset.
 *
 * @module
 */

import type { Backend, Tensor } from "../backend/mod.ts";
import { type ModelConfig, parameterShapes } from "./config.ts";
import { CheckpointError } from "../io/checkpoint.ts";

/** Offsets are multiples of 64 elements: the 256-byte alignment of a WebGPU binding. */

/**
 * Non-finite numbers where a model needs finite ones. `input` is true when they came in with the
 * user's files (bad input, exit 2 on the command line) and false when a run produced them (its
 * training diverged, exit 1).
 */
export class NonFiniteError extends Error {
  constructor(message: string, readonly input = false) {
    super(message);
    this.name = input ? "NonFiniteInputError" : "NonFiniteError";
  }
}

export const PARAM_ALIGN = 64;

/** One parameter's place in the arena. */
export interface ParamSlot {
  /** HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** HF shape, `[out, in]` for projections. */
  shape: number[];
  /** Element offset in the arena. */
  offset: number;
  /** Number of elements. */
  size: number;
}

/** Arena layout of a model's parameters. */
export interface ParamLayout {
  /** One slot per parameter, in HF order. */
  slots: ParamSlot[];
  /** The slots by HF name. */
  byName: Map<string, ParamSlot>;
  /** Arena size in elements (with alignment padding). */
  total: number;
  /** Number of real parameters (without padding). */
  count: number;
}

/** Lays out the parameters of `config` in HF order. */
export function paramLayout(config: ModelConfig): ParamLayout {
  return layoutOf(parameterShapes(config), PARAM_ALIGN);
}

/**
 * The frozen weights held in half precision (bf16 or f16, issue 12): every matrix (projections,
 * embedding, LM head) in a 2-byte arena, aligned to 128 elements (256 bytes, a binding offset),
 * and the 1-D tensors (norm weights, biases: C elements each, under 0.1% of a model) widened to
 * f32 up front in a small f32 arena, so the norm and bias kernels stay f32 only.
 */
export function halfLayouts(config: ModelConfig): { matrices: ParamLayout; vectors: ParamLayout } {
  const shapes = parameterShapes(config);
  return {
    matrices: layoutOf(shapes.filter((s) => s.shape.length > 1), 2 * PARAM_ALIGN),
    vectors: layoutOf(shapes.filter((s) => s.shape.length <= 1), PARAM_ALIGN),
  };
}

/** The precision of a model's frozen weights on the device. */
export type FrozenDtype = "f32" | "bf16" | "f16";

/**
 * The `half` argument of {@link ParamArena} for a model's parameters: only frozen ones (a model
 * with `trainable: false`, or the base under LoRA) are held in half precision.
 */
export function frozenHalf(
  config: ModelConfig,
  options: { frozenDtype?: FrozenDtype; trainable?: boolean; lora?: unknown },
): { dtype: "bf16" | "f16"; config: ModelConfig } | undefined {
  const dtype = options.frozenDtype;
  const frozen = options.trainable === false || options.lora !== undefined;
  return frozen && (dtype === "bf16" || dtype === "f16") ? { dtype, config } : undefined;
}

function layoutOf(shapes: { name: string; shape: number[] }[], align: number): ParamLayout {
  const slots: ParamSlot[] = [];
  let offset = 0;
  let count = 0;
  for (const { name, shape } of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    slots.push({ name, shape, offset, size });
    offset += Math.ceil(size / align) * align;
    count += size;
  }
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, count };
}

/** One piece of an arena: the elements [offset, offset + size) of `layout`, one tensor (buffer). */
export interface ArenaSegment {
  /** The tensor holding the piece, its own allocation (one buffer on WebGPU). */
  readonly tensor: Tensor;
  /** The layout whose elements it holds (with half frozen weights: the matrices' or the 1-D's). */
  readonly layout: ParamLayout;
  /** Element offset in `layout`. */
  readonly offset: number;
  /** Elements, padding included. */
  readonly size: number;
  /** The tensors it holds, in layout order. */
  readonly slots: readonly ParamSlot[];
}

/**
 * Cuts `layout` into runs of whole tensors of at most `maxBytes` each (`bytesPer` per element),
 * greedily in layout order: every tensor lies in one run, and the runs laid end to end are the
 * layout. Throws, naming the tensor and the limit, when one tensor alone exceeds `maxBytes`.
 */
export function segmentLayout(
  layout: ParamLayout,
  bytesPer: number,
  maxBytes: number,
): { offset: number; size: number }[] {
  const runs: { offset: number; size: number }[] = [];
  let start = 0;
  layout.slots.forEach((slot, i) => {
    const end = layout.slots[i + 1]?.offset ?? layout.total;
    if ((end - slot.offset) * bytesPer > maxBytes) {
      throw new RangeError(
        `tensor ${slot.name} [${slot.shape}] needs ${(end - slot.offset) * bytesPer} bytes, more ` +
          `than one buffer holds (${maxBytes} bytes, the adapter's maxBufferSize); no arena can ` +
          "hold it: use a model whose tensors fit or an adapter with larger buffers",
      );
    }
    if ((end - start) * bytesPer > maxBytes) {
      runs.push({ offset: start, size: slot.offset - start });
      start = slot.offset;
    }
  });
  runs.push({ offset: start, size: layout.total - start });
  return runs;
}

/**
 * One role's arena and a view per parameter. The arena is one tensor where the backend's largest
 * buffer ({@link Backend.maxBufferBytes}) holds it, else several {@link segments}, each whole
 * tensors (a Qwen2.5-1.5B f32 arena, 6.17 GB, takes three of llvmpipe's 2 GiB buffers); the
 * layout, its offsets and the flat form read and written stay those of one arena. Padding between
 * tensors is zero: written so by {@link writeAll}, and no op writes it otherwise.
 */
export class ParamArena {
  /**
   * The arena's pieces in layout order (with half-precision frozen weights: the matrices' pieces,
   * then the 1-D tensors').
   */
  readonly segments: readonly ArenaSegment[];
  readonly #views = new Map<string, Tensor>();
  /** With half-precision frozen weights: both layouts. */
  readonly #half?: { matrices: ParamLayout; vectors: ParamLayout };

  /**
   * An arena of `role` for `layout` on `backend`. `half` (frozen parameters only) holds the
   * matrices in bf16 or f16, 2 bytes per element, and the 1-D tensors in f32 (see
   * {@link halfLayouts}); the values written must be exactly representable.
   */
  constructor(
    readonly backend: Backend,
    readonly layout: ParamLayout,
    role: "parameters" | "gradients" | "optimizer",
    half?: { dtype: "bf16" | "f16"; config: ModelConfig },
  ) {
    const parts: Array<[ParamLayout, "f32" | "bf16" | "f16"]> = [[layout, "f32"]];
    if (half) {
      this.#half = halfLayouts(half.config);
      parts.splice(0, 1, [this.#half.matrices, half.dtype], [this.#half.vectors, "f32"]);
    }
    const segments: ArenaSegment[] = [];
    for (const [part, dtype] of parts) {
      const runs = segmentLayout(part, dtype === "f32" ? 4 : 2, backend.maxBufferBytes);
      for (const { offset, size } of runs) {
        const tensor = backend.alloc(role, size, dtype);
        const slots = part.slots.filter((t) => t.offset >= offset && t.offset < offset + size);
        for (const slot of slots) {
          this.#views.set(slot.name, backend.view(tensor, slot.offset - offset, slot.size));
        }
        segments.push({ tensor, layout: part, offset, size, slots });
      }
    }
    this.segments = segments;
  }

  /** The view of parameter `name`; throws with the known names when it does not exist. */
  get(name: string): Tensor {
    const view = this.#views.get(name);
    if (!view) throw new Error(`no parameter named ${name}`);
    return view;
  }

  /** The view of `name`, or undefined (optional tensors such as biases). */
  maybe(name: string): Tensor | undefined {
    return this.#views.get(name);
  }

  /** Sets every element, padding included, to `value` (gradients before a step): per segment. */
  fill(value: number): void {
    this.#f32Only("fill");
    for (const s of this.segments) this.backend.ops.fill(s.tensor, value, s.size);
  }

  /** Copies the whole arena to the host as one flat array (with padding), in {@link layout}. */
  async readArena(): Promise<Float32Array | Float64Array> {
    if (!this.#half) {
      const parts = [];
      for (const s of this.segments) parts.push(await this.#read(s.tensor));
      if (parts.length === 1) return parts[0];
      const flat = new (parts[0].constructor as Float32ArrayConstructor)(this.layout.total);
      parts.forEach((part, i) => flat.set(part, this.segments[i].offset));
      return flat;
    }
    const flat = new Float32Array(this.layout.total);
    for (const [name, t] of await this.readAll()) {
      flat.set(t.data, this.layout.byName.get(name)!.offset);
    }
    return flat;
  }

  /** Writes a flat array of {@link layout} (as {@link readArena} returns it), per segment. */
  writeArena(flat: Float32Array | Float64Array): void {
    this.#f32Only("writeArena");
    if (flat.length !== this.layout.total) {
      throw new Error(`writeArena: ${flat.length} elements for an arena of ${this.layout.total}`);
    }
    for (const s of this.segments) {
      this.backend.write(s.tensor, flat.subarray(s.offset, s.offset + s.size));
    }
  }

  /** Copies every parameter to the host, keyed by HF name (half weights widened to f32). */
  async readAll(): Promise<Map<string, { shape: number[]; data: Float32Array | Float64Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array | Float64Array }>();
    for (const s of this.segments) {
      const flat = await this.#read(s.tensor);
      for (const slot of s.slots) {
        const at = slot.offset - s.offset;
        out.set(slot.name, { shape: slot.shape, data: flat.slice(at, at + slot.size) });
      }
    }
    return out;
  }

  async #read(t: Tensor): Promise<Float32Array | Float64Array> {
    return (await this.backend.read(t)) as Float32Array | Float64Array;
  }

  #f32Only(what: string): void {
    if (this.#half) throw new Error(`${what}: not on an arena of half-precision frozen weights`);
  }

  /**
   * Writes named tensors into the arena, one upload per tensor (no flat host copy of the arena),
   * and zeros the padding after each. Every parameter of the layout must be present with its exact
   * shape; extra tensors are an error unless their names end with one of `ignore`. Nothing is
   * written unless all pass.
   */
  writeAll(
    tensors: Map<string, { shape: number[]; data: ArrayLike<number> }>,
    { source = "checkpoint", ignore = [] as string[] } = {},
  ): void {
    for (const slot of this.layout.slots) {
      const t = tensors.get(slot.name);
      if (!t) {
        throw new Error(`${source}: missing tensor ${slot.name} (shape [${slot.shape}])`);
      }
      if (t.shape.join(",") !== slot.shape.join(",")) {
        throw new Error(
          `${source}: tensor ${slot.name} has shape [${t.shape}], the config needs [${slot.shape}]`,
        );
      }
      const bad = Array.prototype.findIndex.call(t.data, (x: number) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new NonFiniteError(
          `${source}: tensor ${slot.name} holds ${t.data[bad]} at element ${bad}; a model with ` +
            "non-finite weights cannot be trained or scored (was it saved from a diverged run?)",
          true,
        );
      }
    }
    for (const name of tensors.keys()) {
      if (!this.layout.byName.has(name) && !ignore.some((p) => name.endsWith(p))) {
        throw new CheckpointError(
          `${source}: unexpected tensor ${name}; this config does not use it (check ` +
            `tie_word_embeddings and attention_bias in config.json)`,
        );
      }
    }
    // Half arenas are written as f32 values (exact by construction, checked on the device side);
    // their writes pack pairs, so an odd-sized tensor's write covers one padding element too.
    for (const s of this.segments) {
      s.slots.forEach((slot, i) => {
        const at = slot.offset - s.offset;
        const end = (s.slots[i + 1]?.offset ?? s.offset + s.size) - s.offset;
        const written = slot.size + (s.tensor.dtype !== "f32" ? slot.size % 2 : 0);
        this.backend.write(s.tensor, tensors.get(slot.name)!.data, at);
        if (end > at + written) {
          this.backend.write(s.tensor, new Float32Array(end - at - written), at + written);
        }
      });
    }
  }
}
