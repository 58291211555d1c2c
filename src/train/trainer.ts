/**
 * One optimizer step on the device: for each micro-batch, upload its tokens, record the forward,
 * the objective and the backward, and submit; after the last, record the gradient norm and the
 * optimizer update in the same submit. Nothing is read back inside a step: the loss and the
 * metrics accumulate on the device and {@link Trainer.readMetrics} fetches them at logging steps.
 *
 * @module
 */

import type { Backend, KtoLossSpec, PreferenceLossSpec, Tensor } from "../backend/mod.ts";
import { KTO_METRICS, PREFERENCE_METRICS } from "../backend/mod.ts";
import type { LlamaModel, SequenceScorer } from "../model/llama.ts";
import { dropoutSeed } from "../model/lora_adapters.ts";
import type { TokenBatch } from "../data/collate.ts";
import { metricsOf } from "../backend/losses.ts";
import type { DeviceOptimizer } from "./optimizer.ts";

/** The negative log-likelihood of the completion tokens (SFT), averaged over the step's tokens. */
export interface NllObjective {
  /** Tag of the objective. */
  kind: "nll";
}

/**
 * A preference loss on pairs, resolved where the run's options were read (`resolveLossSpec`:
 * one type or a weighted list, TRL's options); each batch holds P chosen rows then P rejected.
 */
export interface PreferenceObjective {
  /** Tag of the objective. */
  kind: "preference";
  /** The resolved preference loss. */
  spec: PreferenceLossSpec;
}

/** KTO on unpaired examples, resolved by `resolveKtoSpec` (src/backend/kto_loss.ts). */
export interface KtoObjective {
  /** Tag of the objective. */
  kind: "kto";
  /** The resolved KTO loss. */
  spec: KtoLossSpec;
}

/** What a step minimises. */
export type Objective = NllObjective | PreferenceObjective | KtoObjective;

/** One micro-batch of a step. */
export interface MicroBatch {
  /** The sequences, with their completion token counts (for the NLL and the normalised losses). */
  batch: TokenBatch;
  /**
   * Reference log-probs, for preference objectives (B = 2P, chosen then rejected; omitted when
   * the trainer has a live reference model or the loss is reference-free) and for KTO (2B: the
   * examples, then the mismatched pairs of `klBatch`).
   */
  referenceLogps?: ArrayLike<number>;
  /** KTO: the mismatched pairs (prompt i, completion of example i+1), B rows like `batch`. */
  klBatch?: TokenBatch;
  /** KTO: 1 (desirable) or 0 per example (B). */
  labels?: ArrayLike<number | boolean>;
  /** SPPO: the win-rate of each sequence (B = 2P, chosen then rejected), for loss `sppo`. */
  winRates?: ArrayLike<number>;
}

/** Metrics of the steps since the last read, averaged per step. */
export type StepMetrics = Record<string, number>;

/** Runs optimizer steps of a model on its backend. */
export class Trainer {
  readonly #metrics: Tensor;
  readonly #weights: Tensor;
  readonly #reference: Tensor;
  readonly #tokens: Tensor;
  readonly #labels: Tensor;
  readonly #klPolicy: Tensor;
  readonly #winRates: Tensor;
  readonly #loss?: PreferenceLossSpec;
  readonly #kto?: KtoLossSpec;
  #stepsSinceRead = 0;

  /**
   * A trainer of `model` with `optimizer` on `objective`.
   *
   * @param reference a live reference model: each micro-batch runs its forward on the device
   *   instead of reading cached log-probs (for comparison; the cache is the point of the design).
   *   With LoRA it can be the policy's own weights with the adapters off
   *   (`model.withAdapters("none")`): no second copy.
   * @param seed seed of the LoRA dropout masks, a pure function of (seed, step, micro-batch) so
   *   a resumed run draws the masks the uninterrupted run would. @default 42
   */
  constructor(
    readonly model: LlamaModel,
    readonly optimizer: DeviceOptimizer,
    readonly objective: Objective,
    readonly reference?: SequenceScorer,
    readonly seed = 42,
  ) {
    const backend: Backend = model.backend;
    const maxB = model.options.maxBatch;
    if (objective.kind === "preference") this.#loss = objective.spec;
    else if (objective.kind === "kto") this.#kto = objective.spec;
    this.#metrics = backend.alloc("activations", PREFERENCE_METRICS.length);
    this.#weights = backend.alloc("activations", maxB);
    this.#reference = backend.alloc("activations", 2 * maxB);
    this.#tokens = backend.alloc("activations", maxB);
    this.#labels = backend.alloc("activations", maxB);
    this.#klPolicy = backend.alloc("activations", maxB);
    this.#winRates = backend.alloc("activations", maxB);
  }

  /** The resolved preference loss (undefined for the other objectives). */
  get lossSpec(): PreferenceLossSpec | undefined {
    return this.#loss;
  }

  /** Records and submits one optimizer step over `micro` (gradient accumulation). */
  step(micro: MicroBatch[]): void {
    const { model, optimizer, objective } = this;
    const backend = model.backend;
    const ops = backend.ops;
    const totalSequences = micro.reduce((n, m) => n + m.batch.rows, 0);
    const totalTokens = micro.reduce(
      (n, m) => n + m.batch.tokenCounts.reduce((a, b) => a + b, 0),
      0,
    );
    micro.forEach((m, i) => {
      const { rows: B } = m.batch;
      if (i === 0) model.trainable.grads.fill(0);
      if (objective.kind === "nll") {
        backend.write(this.#weights, new Float32Array(B).fill(-1 / Math.max(1, totalTokens)));
      } else if (objective.kind === "kto") {
        this.#prepareKto(m);
      } else {
        this.#preparePreference(m);
      }
      model.setBatch(m.batch);
      model.forward({ dropoutSeed: dropoutSeed(this.seed, optimizer.step, i) });
      const a = model.acts;
      if (objective.kind === "nll") {
        ops.weightedSum(this.#metrics, a.seqGrad, a.seqLogps, this.#weights, B, true);
      } else if (objective.kind === "kto") {
        ops.ktoLoss({
          spec: this.#kto!,
          metrics: this.#metrics,
          seqGrad: a.seqGrad,
          policyLogps: a.seqLogps,
          policyKlLogps: this.#klPolicy,
          refLogps: this.#reference,
          labels: this.#labels,
          B,
          scale: 1 / totalSequences,
        });
      } else {
        ops.preferenceLoss({
          spec: this.#loss!,
          metrics: this.#metrics,
          seqGrad: a.seqGrad,
          policyLogps: a.seqLogps,
          refLogps: this.#reference,
          tokenCounts: this.#tokens,
          winRates: this.#winRates,
          P: B / 2,
          scale: 2 / totalSequences,
        });
      }
      model.backward();
      if (i === micro.length - 1) optimizer.record(model.trainable.params, model.trainable.grads);
      backend.submit();
    });
    this.#stepsSinceRead++;
  }

  #preparePreference(m: MicroBatch): void {
    const backend = this.model.backend;
    const { rows: B } = m.batch;
    backend.write(this.#tokens, Float32Array.from(m.batch.tokenCounts));
    if (this.#loss!.lossTypes.includes("sppo")) {
      if (!m.winRates || m.winRates.length !== B) {
        throw new Error(`loss sppo needs winRates (${B}: chosen then rejected) per micro-batch`);
      }
      backend.write(this.#winRates, Float32Array.from(m.winRates));
    }
    if (this.#loss!.referenceFree) return;
    if (this.reference) {
      this.reference.setBatch(m.batch);
      this.reference.forward();
      backend.ops.copy(this.#reference, this.reference.acts.seqLogps, B);
    } else if (m.referenceLogps) {
      backend.write(this.#reference, m.referenceLogps);
    } else {
      throw new Error(
        `loss ${this.#loss!.lossTypes.join(",")} needs referenceLogps for every micro-batch ` +
          "(or a reference-free loss: simpo, orpo, or referenceFree)",
      );
    }
  }

  /**
   * KTO: the mismatched pairs run a forward only (their log-probs are detached in z0), submitted
   * before the examples' ids overwrite theirs.
   */
  #prepareKto(m: MicroBatch): void {
    const { model } = this;
    const backend = model.backend;
    const { rows: B } = m.batch;
    if (!m.klBatch || !m.labels || !m.referenceLogps || m.klBatch.rows !== B) {
      throw new Error("KTO needs klBatch (B rows), labels and referenceLogps (2B) per micro-batch");
    }
    model.setBatch(m.klBatch);
    model.forward();
    backend.ops.copy(this.#klPolicy, model.acts.seqLogps, B);
    backend.submit();
    backend.write(this.#labels, Float32Array.from(m.labels, (l) => (l ? 1 : 0)));
    backend.write(this.#reference, m.referenceLogps);
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
    } else if (this.objective.kind === "kto") {
      const at = (name: typeof KTO_METRICS[number]) => raw[KTO_METRICS.indexOf(name)];
      out.loss = at("loss") / steps;
      out.kl = at("kl") / steps;
      const nC = at("count/chosen"), nR = at("count/rejected");
      // TRL's KTO logs sums over the logging period divided by their counts.
      if (nC > 0) out["rewards/chosen"] = at("rewards/chosen_sum") / nC;
      if (nR > 0) out["rewards/rejected"] = at("rewards/rejected_sum") / nR;
      if (nC > 0 && nR > 0) {
        out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"];
      }
      if (nC > 0) out["logps/chosen"] = at("logps/chosen_sum") / nC;
      if (nR > 0) out["logps/rejected"] = at("logps/rejected_sum") / nR;
      out["count/chosen"] = nC / steps;
      out["count/rejected"] = nR / steps;
    } else {
      for (const name of metricsOf(this.#loss!)) {
        out[name] = raw[PREFERENCE_METRICS.indexOf(name as typeof PREFERENCE_METRICS[number])] /
          steps;
      }
    }
    out.grad_norm = await this.optimizer.gradNorm();
    out.learning_rate = this.optimizer.lrAt(this.optimizer.step - 1);
    backend.ops.fill(this.#metrics, 0, PREFERENCE_METRICS.length);
    backend.submit();
    this.#stepsSinceRead = 0;
    return out;
  }
}
