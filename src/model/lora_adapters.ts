/**
 * LoRA adapters on a backend: the trainable A and B of every target module in one arena (its
 * gradients in another, laid out alike, so the optimizer is one dispatch over the adapters only),
 * an optional frozen copy (the reference when training continues from an existing adapter, TRL's
 * "ref" adapter), and the forward and backward of `y += scaling · B(A(dropout(x)))` recorded with
 * the backend's ops (matmul, dropout) next to the base layer's own.
 *
 * Shapes, per module of `in` → `out` features and N = B*T rows:
 *   x (N,in) → xd = dropout(x) (N,in) → h = xd A^T (N,r) → hs = scaling·h (N,r, kept)
 *   y (N,out) += hs B^T
 * backward, from dY (N,out):
 *   dB (out,r) += dY^T hs;  dH = scaling · dY B (N,r);  dA (r,in) += dH^T xd
 *   dX (N,in) += mask ⊙ (dH A) / (1-p)   (the mask recomputed from the same seed)
 *
 * @module
 */

import type { Backend, Tensor } from "../backend/mod.ts";
import { mix32 } from "../backend/mod.ts";
import type { ModelConfig } from "./config.ts";
import {
  LORA_MODULES,
  loraLayout,
  type LoraModule,
  type LoraOptions,
  loraTensorName,
  moduleShape,
} from "./lora.ts";
import { ParamArena, type ParamLayout } from "./params.ts";

/** Which adapter weights a forward adds: the trained ones, the frozen reference copy, or none. */
export type AdapterChoice = "policy" | "reference" | "none";

/** The adapters of one model. */
export class LoraAdapters {
  /** Arena layout of A and B under PEFT's names. */
  readonly layout: ParamLayout;
  /** The trained adapter weights. */
  readonly params: ParamArena;
  /** Their gradients (absent for a frozen model). */
  readonly grads?: ParamArena;
  /** The frozen reference adapter, when the reference is base + an existing adapter. */
  reference?: ParamArena;
  /** alpha / r. */
  readonly scaling: number;
  readonly #hs = new Map<string, Tensor>();
  readonly #h: Tensor;
  readonly #xd: Tensor;
  readonly #dXd: Tensor;
  readonly #dH: Tensor;
  readonly #seed: Tensor;
  readonly #backend: Backend;
  #dropoutOn = false;
  #choice: AdapterChoice = "policy";

  /**
   * Adapters for `config` with `options`, for batches of up to `rows` rows. `trainable` adds the
   * gradients and the backward scratch.
   */
  constructor(
    backend: Backend,
    config: ModelConfig,
    readonly options: LoraOptions,
    rows: number,
    trainable: boolean,
  ) {
    this.#backend = backend;
    this.layout = loraLayout(config, options);
    this.params = new ParamArena(backend, this.layout, "parameters");
    if (trainable) this.grads = new ParamArena(backend, this.layout, "gradients");
    this.scaling = options.alpha / options.r;
    const { r } = options;
    const widest = Math.max(...options.targetModules.map((m) => moduleShape(config, m).in));
    const a = (size: number) => backend.alloc("activations", size);
    for (let l = 0; l < config.numLayers; l++) {
      for (const m of options.targetModules) {
        // A frozen model runs no backward: its layers share one hs.
        this.#hs.set(`${l}.${m}`, trainable || l === 0 ? a(rows * r) : this.#hs.get(`0.${m}`)!);
      }
    }
    this.#h = a(rows * r);
    this.#xd = a(options.dropout > 0 ? rows * widest : 1);
    this.#dXd = a(trainable ? rows * widest : 1);
    this.#dH = a(trainable ? rows * r : 1);
    this.#seed = backend.alloc("inputs", 1, "i32");
  }

  /** Whether `module` carries an adapter. */
  has(module: LoraModule): boolean {
    return this.options.targetModules.includes(module);
  }

  /**
   * Sets what the next forward (and its backward) adds: `choice`, and dropout with the key
   * `dropoutSeed` (training) or none (`undefined`: evaluation, scoring, the reference).
   */
  begin(choice: AdapterChoice, dropoutSeed?: number): void {
    this.#choice = choice;
    if (choice === "reference" && !this.reference) {
      throw new Error("no reference adapter on this model (load one with setReference)");
    }
    this.#dropoutOn = choice === "policy" && dropoutSeed !== undefined && this.options.dropout > 0;
    if (this.#dropoutOn) this.#backend.write(this.#seed, [dropoutSeed! | 0]);
  }

  /** A frozen copy of the current adapter weights becomes the reference adapter. */
  setReference(weights: Map<string, { shape: number[]; data: ArrayLike<number> }>): void {
    this.reference ??= new ParamArena(this.#backend, this.layout, "parameters");
    this.reference.writeAll(weights, { source: "reference adapter" });
  }

  /** Records y (N,out) += scaling · B A dropout(x) for module `m` of layer `l`. */
  forward(l: number, m: LoraModule, x: Tensor, y: Tensor, N: number, inF: number, outF: number) {
    if (this.#choice === "none" || !this.has(m)) return;
    const ops = this.#backend.ops;
    const arena = this.#choice === "reference" ? this.reference! : this.params;
    const { r } = this.options;
    const A = arena.get(loraTensorName(l, m, "A")), B = arena.get(loraTensorName(l, m, "B"));
    const xd = this.#dropped(l, m, x, N * inF);
    const hs = this.#hs.get(`${l}.${m}`)!;
    ops.matmul(this.#h, xd, A, N, r, inF, { transB: true });
    ops.dropout({ out: hs, x: this.#h, n: N * r, p: 0, scale: this.scaling });
    ops.matmul(y, hs, B, N, outF, r, { transB: true, accumulate: true });
  }

  /**
   * Records the backward of {@link forward} for module `m` of layer `l`: the adapter gradients,
   * and dX (N,in) += the input gradient through the adapter. `x` is the forward's input.
   */
  backward(
    l: number,
    m: LoraModule,
    x: Tensor,
    dY: Tensor,
    dX: Tensor,
    N: number,
    inF: number,
    outF: number,
  ) {
    if (this.#choice !== "policy" || !this.has(m)) return;
    if (!this.grads) throw new Error("these adapters were created without gradients");
    const ops = this.#backend.ops;
    const { r, dropout: p } = this.options;
    const name = (w: "A" | "B") => loraTensorName(l, m, w);
    const A = this.params.get(name("A")), B = this.params.get(name("B"));
    const hs = this.#hs.get(`${l}.${m}`)!;
    ops.matmul(this.grads.get(name("B")), dY, hs, outF, r, N, { transA: true, accumulate: true });
    ops.matmul(this.#h, dY, B, N, r, outF);
    ops.dropout({ out: this.#dH, x: this.#h, n: N * r, p: 0, scale: this.scaling });
    const xd = this.#dropped(l, m, x, N * inF);
    ops.matmul(this.grads.get(name("A")), this.#dH, xd, r, inF, N, {
      transA: true,
      accumulate: true,
    });
    ops.matmul(this.#dXd, this.#dH, A, N, inF, r);
    ops.dropout({
      out: dX,
      x: this.#dXd,
      n: N * inF,
      p: this.#dropoutOn ? p : 0,
      seed: this.#seed,
      salt: salt(l, m),
      accumulate: true,
    });
  }

  /** dropout(x) into scratch, or x itself when dropout is off. */
  #dropped(l: number, m: LoraModule, x: Tensor, n: number): Tensor {
    if (!this.#dropoutOn) return x;
    this.#backend.ops.dropout({
      out: this.#xd,
      x,
      n,
      p: this.options.dropout,
      seed: this.#seed,
      salt: salt(l, m),
    });
    return this.#xd;
  }
}

/** The dropout salt of a module of a layer: each wrapped Linear has its own mask, as in PEFT. */
function salt(l: number, m: LoraModule): number {
  return mix32(l * LORA_MODULES.length + LORA_MODULES.indexOf(m));
}

/** The dropout key of micro-batch `micro` of optimizer step `step` of a run seeded `seed`. */
export function dropoutSeed(seed: number, step: number, micro: number): number {
  return mix32(mix32(mix32(seed >>> 0) ^ (step >>> 0)) ^ (micro >>> 0));
}
