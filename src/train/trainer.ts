/**
 * One optimizer step on the device: for each micro-batch, upload its tokens, record the forward,
 * the objective and the backward, and submit; after the last, record the gradient norm and the
 * optimizer update in the same submit. Nothing is read back inside a step: the loss and the
 * metrics accumulate on the device and {@link Trainer.readMetrics} fetches them at logging steps.
 *
 * @module
 */

import type { Backend, PreferenceLossType, Tensor } from "../backend.ts";
import { PREFERENCE_METRICS } from "../backend.ts";
import type { LlamaModel, TokenBatch } from "../model/llama.ts";
import type { DeviceOptimizer } from "./optimizer.ts";

/** The negative log-likelihood of the completion tokens (SFT), averaged over the step's tokens. */
export interface NllObjective {
  kind: "nll";
}

/** A preference loss on pairs; each batch holds P chosen rows then P rejected rows. */
export interface PreferenceObjective {
  kind: "preference";
  lossType: PreferenceLossType;
  beta: number;
  /** cDPO's label smoothing ε. @default 0 */
  labelSmoothing?: number;
}

/** What a step minimises. */
export type Objective = NllObjective | PreferenceObjective;

/** One micro-batch of a step. */
export interface MicroBatch {
  batch: TokenBatch;
  /** Completion tokens per sequence (B), for the NLL's normalisation. */
  tokenCounts: ArrayLike<number>;
  /**
   * Reference log-probs (B = 2P, chosen then rejected), for preference objectives; omitted when
   * the trainer has a live reference model.
   */
  referenceLogps?: ArrayLike<number>;
}

/** Metrics of the steps since the last read, averaged per step. */
export type StepMetrics = Record<string, number>;

/** Runs optimizer steps of a model on its backend. */
export class Trainer {
  readonly #metrics: Tensor;
  readonly #weights: Tensor;
  readonly #reference: Tensor;
  #stepsSinceRead = 0;

  /**
   * @param reference a live reference model: each micro-batch runs its forward on the device
   *   instead of reading cached log-probs (for comparison; the cache is the point of the design).
   */
  constructor(
    readonly model: LlamaModel,
    readonly optimizer: DeviceOptimizer,
    readonly objective: Objective,
    readonly reference?: LlamaModel,
  ) {
    const backend: Backend = model.backend;
    const maxB = model.options.maxBatch;
    this.#metrics = backend.alloc("activations", PREFERENCE_METRICS.length);
    this.#weights = backend.alloc("activations", maxB);
    this.#reference = backend.alloc("activations", maxB);
  }

  /** Records and submits one optimizer step over `micro` (gradient accumulation). */
  step(micro: MicroBatch[]): void {
    const { model, optimizer, objective } = this;
    const backend = model.backend;
    const ops = backend.ops;
    const totalSequences = micro.reduce((n, m) => n + m.batch.B, 0);
    const totalTokens = micro.reduce(
      (n, m) => n + Array.from(m.tokenCounts).reduce((a, b) => a + b, 0),
      0,
    );
    micro.forEach((m, i) => {
      const { B } = m.batch;
      model.setBatch(m.batch);
      if (objective.kind === "nll") {
        backend.write(this.#weights, new Float32Array(B).fill(-1 / Math.max(1, totalTokens)));
      } else if (this.reference) {
        this.reference.setBatch(m.batch);
        this.reference.forward();
        ops.copy(this.#reference, this.reference.acts.seqLogps, B);
      } else if (m.referenceLogps) {
        backend.write(this.#reference, m.referenceLogps);
      } else {
        throw new Error("a preference objective needs referenceLogps for every micro-batch");
      }
      if (i === 0) ops.fill(model.grads.arena, 0, model.layout.total);
      model.forward();
      const a = model.acts;
      if (objective.kind === "nll") {
        ops.weightedSum(this.#metrics, a.seqGrad, a.seqLogps, this.#weights, B, true);
      } else {
        ops.preferenceLoss(
          objective.lossType,
          this.#metrics,
          a.seqGrad,
          a.seqLogps,
          this.#reference,
          B / 2,
          objective.beta,
          objective.labelSmoothing ?? 0,
          2 / totalSequences,
        );
      }
      model.backward();
      if (i === micro.length - 1) optimizer.record(model.params, model.grads);
      backend.submit();
    });
    this.#stepsSinceRead++;
  }

  /**
   * Reads the metrics accumulated since the last read (one readback), averaged per step, plus
   * the last step's gradient norm and learning rate; then resets the accumulators.
   */
  async readMetrics(): Promise<StepMetrics> {
    const backend = this.model.backend;
    const raw = await backend.read(this.#metrics);
    const steps = Math.max(1, this.#stepsSinceRead);
    const out: StepMetrics = {};
    if (this.objective.kind === "nll") {
      out.loss = raw[0] / steps;
    } else {
      PREFERENCE_METRICS.forEach((name, i) => out[name] = raw[i] / steps);
    }
    out.grad_norm = await this.optimizer.gradNorm();
    out.learning_rate = this.optimizer.lrAt(this.optimizer.step - 1);
    backend.ops.fill(this.#metrics, 0, PREFERENCE_METRICS.length);
    backend.submit();
    this.#stepsSinceRead = 0;
    return out;
  }
}
