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

/** One role's arena and a view per parameter. */
export class ParamArena {
  /** The whole arena (with half-precision frozen weights: the f32 one of the 1-D tensors). */
  readonly arena: Tensor;
  readonly #views = new Map<string, Tensor>();
  /** With half-precision frozen weights: the matrices' arena and both layouts. */
  readonly #half?: { arena: Tensor; matrices: ParamLayout; vectors: ParamLayout };

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
    if (half) {
      const { matrices, vectors } = halfLayouts(half.config);
      const arena = backend.alloc(role, matrices.total, half.dtype);
      this.arena = backend.alloc(role, vectors.total);
      this.#half = { arena, matrices, vectors };
      for (const slot of matrices.slots) {
        this.#views.set(slot.name, backend.view(arena, slot.offset, slot.size));
      }
      for (const slot of vectors.slots) {
        this.#views.set(slot.name, backend.view(this.arena, slot.offset, slot.size));
      }
      return;
    }
    this.arena = backend.alloc(role, layout.total);
    for (const slot of layout.slots) {
      this.#views.set(slot.name, backend.view(this.arena, slot.offset, slot.size));
    }
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

  /** Copies the whole arena to the host as one flat array (with padding), in {@link layout}. */
  async readArena(): Promise<Float32Array | Float64Array> {
    if (!this.#half) return (await this.backend.read(this.arena)) as Float32Array | Float64Array;
    const flat = new Float32Array(this.layout.total);
    for (const [name, t] of await this.readAll()) {
      flat.set(t.data, this.layout.byName.get(name)!.offset);
    }
    return flat;
  }

  /** Copies every parameter to the host, keyed by HF name (half weights widened to f32). */
  async readAll(): Promise<Map<string, { shape: number[]; data: Float32Array | Float64Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array | Float64Array }>();
    const parts: Array<[Tensor, ParamLayout]> = this.#half
      ? [[this.#half.arena, this.#half.matrices], [this.arena, this.#half.vectors]]
      : [[this.arena, this.layout]];
    for (const [arena, layout] of parts) {
      const flat = (await this.backend.read(arena)) as Float32Array | Float64Array;
      for (const s of layout.slots) {
        out.set(s.name, { shape: s.shape, data: flat.slice(s.offset, s.offset + s.size) });
      }
    }
    return out;
  }

  /**
   * Writes named tensors into the arena in one upload. Every parameter of the layout must be
   * present with its exact shape; extra tensors are an error unless `ignoreExtra` is set.
   */
  writeAll(
    tensors: Map<string, { shape: number[]; data: ArrayLike<number> }>,
    { source = "checkpoint", ignore = [] as string[] } = {},
  ): void {
    // Half arenas are written as f32 values (exact by construction, checked on the device side).
    const half = this.#half;
    const flat = half ? new Float32Array(half.vectors.total) : new Float64Array(this.layout.total);
    const flatHalf = half ? new Float32Array(half.matrices.total) : undefined;
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
      if (half) {
        const m = half.matrices.byName.get(slot.name);
        if (m) flatHalf!.set(t.data, m.offset);
        else flat.set(t.data, half.vectors.byName.get(slot.name)!.offset);
      } else flat.set(t.data, slot.offset);
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
    this.backend.write(this.arena, flat);
    if (half) this.backend.write(half.arena, flatHalf!);
  }
}
