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
  const slots: ParamSlot[] = [];
  let offset = 0;
  let count = 0;
  for (const { name, shape } of parameterShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    slots.push({ name, shape, offset, size });
    offset += Math.ceil(size / PARAM_ALIGN) * PARAM_ALIGN;
    count += size;
  }
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, count };
}

/** One role's arena and a view per parameter. */
export class ParamArena {
  /** The whole arena. */
  readonly arena: Tensor;
  readonly #views = new Map<string, Tensor>();

  /** An arena of `role` for `layout` on `backend`. */
  constructor(
    readonly backend: Backend,
    readonly layout: ParamLayout,
    role: "parameters" | "gradients" | "optimizer",
  ) {
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

  /** Copies the whole arena to the host as one flat array (with padding). */
  async readArena(): Promise<Float32Array | Float64Array> {
    return (await this.backend.read(this.arena)) as Float32Array | Float64Array;
  }

  /** Copies every parameter to the host, keyed by HF name. */
  async readAll(): Promise<Map<string, { shape: number[]; data: Float32Array | Float64Array }>> {
    const flat = await this.readArena();
    const out = new Map<string, { shape: number[]; data: Float32Array | Float64Array }>();
    for (const s of this.layout.slots) {
      out.set(s.name, { shape: s.shape, data: flat.slice(s.offset, s.offset + s.size) });
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
    const flat = new Float64Array(this.layout.total);
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
      flat.set(t.data, slot.offset);
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
  }
}
