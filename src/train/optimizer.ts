/**
 * The optimizer on the device: state arenas laid out like the parameters, a small hyper tensor
 * written each step (learning rate from the schedule, bias corrections), and the global gradient
 * norm reduced on the device, so a step needs no readback.
 *
 * @module
 */

import type { Backend, OptimizerHyper, Tensor } from "../backend/mod.ts";
import { HYPER_SLOTS, normScratchSlots } from "../backend/mod.ts";
import { ParamArena, type ParamLayout } from "../model/params.ts";
import { learningRate } from "./schedule.ts";

/** Options of {@link DeviceOptimizer}; defaults follow HF TrainingArguments and PyTorch. */
export interface OptimizerOptions {
  /** Update rule. @default "adamw" */
  kind?: "adamw" | "rmsprop" | "sgd";
  /** Peak learning rate. @default 5e-5 */
  lr?: number;
  /** Adam's β1. @default 0.9 */
  beta1?: number;
  /** Adam's β2. @default 0.999 */
  beta2?: number;
  /** Adam's and RMSprop's ε. @default 1e-8 */
  eps?: number;
  /** Decoupled for AdamW, L2 for RMSprop and SGD (PyTorch). @default 0 */
  weightDecay?: number;
  /** RMSprop smoothing constant. @default 0.99 */
  alpha?: number;
  /** RMSprop / SGD momentum. @default 0 */
  momentum?: number;
  /** Global gradient-norm clip, 0 = off. @default 1 (HF's max_grad_norm) */
  maxGradNorm?: number;
  /** Learning-rate schedule. @default "linear" (HF's lr_scheduler_type) */
  schedule?: "constant" | "linear" | "cosine" | "constant_with_warmup";
  /** Linear warmup steps. @default 0 */
  warmupSteps?: number;
  /** Total optimizer steps, for decaying schedules. @default 1 */
  totalSteps?: number;
}

/** Fills in the defaults of {@link OptimizerOptions}. */
export function optimizerDefaults(o: OptimizerOptions = {}): Required<OptimizerOptions> {
  return {
    kind: o.kind ?? "adamw",
    lr: o.lr ?? 5e-5,
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    eps: o.eps ?? (o.kind === "rmsprop" ? 1e-8 : 1e-8),
    weightDecay: o.weightDecay ?? 0,
    alpha: o.alpha ?? 0.99,
    momentum: o.momentum ?? 0,
    maxGradNorm: o.maxGradNorm ?? 1,
    schedule: o.schedule ?? "linear",
    warmupSteps: o.warmupSteps ?? 0,
    totalSteps: o.totalSteps ?? 1,
  };
}

/** An optimizer whose state and update live on the backend. */
export class DeviceOptimizer {
  /** The options with defaults filled. */
  readonly options: Required<OptimizerOptions>;
  /** First-moment (AdamW) or square-average (RMSprop) state, one per parameter. */
  readonly state1: ParamArena;
  /** Second-moment (AdamW) state, one per parameter. */
  readonly state2: ParamArena;
  /** Packed per-step hyperparameters on the device. */
  readonly hyper: Tensor;
  /** The squared global gradient norm of the last step, on the device. */
  readonly gradNormSq: Tensor;
  readonly #partial: Tensor;
  /** Optimizer steps taken. */
  step = 0;

  /** An optimizer for the parameters of `layout` on `backend`. */
  constructor(
    readonly backend: Backend,
    readonly layout: ParamLayout,
    options: OptimizerOptions = {},
  ) {
    this.options = optimizerDefaults(options);
    this.state1 = new ParamArena(backend, layout, "optimizer");
    this.state2 = new ParamArena(backend, layout, "optimizer");
    this.hyper = backend.alloc("optimizer", HYPER_SLOTS);
    this.gradNormSq = backend.alloc("optimizer", 1);
    this.#partial = backend.alloc("optimizer", normScratchSlots(layout.total));
  }

  /** The learning rate the k-th step (k from 0) uses: HF's schedule lambdas. */
  lrAt(k: number): number {
    const o = this.options;
    return learningRate(k, {
      lr: o.lr,
      schedule: o.schedule,
      warmupSteps: o.warmupSteps,
      totalSteps: o.totalSteps,
    });
  }

  /** The scalars of the next step. */
  hyperAt(k: number): OptimizerHyper {
    const o = this.options;
    return {
      lr: this.lrAt(k),
      step: k + 1,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: o.weightDecay,
      alpha: o.alpha,
      momentum: o.momentum,
      maxGradNorm: o.maxGradNorm,
    };
  }

  /**
   * Records the gradient-norm reduction and one update of `params` from `grads`: the norm over
   * the whole arena, the update per segment when the arena spans several buffers (the four arenas
   * share one layout, so their segments coincide).
   */
  record(params: ParamArena, grads: ParamArena): void {
    const ops = this.backend.ops;
    const n = this.layout.total;
    this.backend.writeHyper(this.hyper, this.hyperAt(this.step));
    ops.sumSquares(this.gradNormSq, this.#partial, grads.segments.map((s) => s.tensor), n);
    const arenas = [params, grads, this.state1, this.state2];
    grads.segments.forEach((segment, k) => {
      const [p, g, s1, s2] = arenas.map((a) => a.segments[k]);
      if (
        arenas.some((a) => a.segments.length !== grads.segments.length) || !p || !s1 || !s2 ||
        [p, s1, s2].some((s) => s.offset !== segment.offset || s.size !== segment.size)
      ) {
        throw new Error("optimizer: parameters, gradients and moments are not laid out alike");
      }
      ops.optimizerStep({
        kind: this.options.kind,
        params: p.tensor,
        grads: g.tensor,
        state1: s1.tensor,
        state2: s2.tensor,
        gradNormSq: this.gradNormSq,
        hyper: this.hyper,
        n: segment.size,
      });
    });
    this.step++;
  }

  /** Reads the global gradient norm of the last step (a readback: call at logging steps). */
  async gradNorm(): Promise<number> {
    return Math.sqrt((await this.backend.read(this.gradNormSq))[0]);
  }
}
