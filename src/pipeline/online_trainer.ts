/**
 * The trainer of Online DPO: the shared {@link Trainer} on a live reference, plus what an online
 * step knows besides the loss (the rewards of its fresh samples) and the one case an offline step
 * never meets: a step whose pairs all tied (with ties dropped) has nothing to learn from, so it
 * takes no update; the optimizer's step count still advances, so the learning-rate schedule
 * stays on the loop's step (as HF's scheduler does when an update is skipped).
 *
 * The metrics it adds to each logged row, averaged over the steps since the last row like TRL's
 * OnlineDPOTrainer logs them: `objective/scores` (mean reward of all samples), `scores/chosen`,
 * `scores/rejected` and `objective/scores_margin` (over the pairs), `val/contain_eos_token`,
 * `objective/entropy` (the samples' mean -Σ log π at sampling), and as sums over the window `pairs`, `tied` (prompts whose two rewards tied), `sampled_tokens`,
 * `trained_tokens` (completion tokens of the pairs) and `skipped_steps`.
 *
 * @module
 */

import type { PreferenceLossSpec } from "../backend/mod.ts";
import type { LlamaModel, SequenceScorer } from "../model/llama.ts";
import type { DeviceOptimizer } from "../train/optimizer.ts";
import { type MicroBatch, type StepMetrics, Trainer } from "../train/trainer.ts";

/** One micro-batch of Online DPO: its labelled pairs and what the sampling saw. */
export interface SampledBatch {
  /** The labelled pairs, collated (no rows when every prompt tied). */
  micro: MicroBatch;
  /** The reward of every sample (2 per prompt, after the missing-EOS penalty). */
  rewards: readonly number[];
  /** The rewards of the chosen samples, one per pair. */
  chosenRewards: readonly number[];
  /** The rewards of the rejected samples, one per pair. */
  rejectedRewards: readonly number[];
  /** Prompts whose two rewards tied (dropped, or the first chosen). */
  tied: number;
  /** Fraction of the samples that ended in EOS. */
  containEos: number;
  /** TRL's `objective/entropy`: the mean over the samples of -Σ log π(token), at sampling. */
  entropy: number;
  /** Tokens sampled (prompts not counted). */
  sampledTokens: number;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A {@link Trainer} of a preference loss whose batches are sampled online. */
export class OnlineTrainer extends Trainer {
  readonly #microPerStep: number;
  #microInStep = 0;
  #window: SampledBatch[][] = [[]];
  #skipped = 0;

  constructor(
    model: LlamaModel,
    optimizer: DeviceOptimizer,
    spec: PreferenceLossSpec,
    reference: SequenceScorer | undefined,
    seed: number,
    /** Micro-batches per optimizer step (gradient accumulation). */
    microBatchesPerStep = 1,
  ) {
    super(model, optimizer, { kind: "preference", spec }, reference, seed);
    this.#microPerStep = microBatchesPerStep;
  }

  /**
   * The global index of the next micro-batch: steps taken times the micro-batches per step, plus
   * those of this step so far (a resumed run's optimizer step is the checkpoint's).
   */
  nextMicroBatch(): number {
    return this.optimizer.step * this.#microPerStep + this.#microInStep;
  }

  /** Records a sampled micro-batch of the current step; returns its collated pairs. */
  add(sampled: SampledBatch): MicroBatch {
    this.#microInStep++;
    this.#window.at(-1)!.push(sampled);
    return sampled.micro;
  }

  /** One optimizer step over the micro-batches with pairs; none: no update (see the module). */
  override step(micro: MicroBatch[]): void {
    this.#microInStep = 0;
    this.#window.push([]);
    const withPairs = micro.filter((m) => m.batch.rows > 0);
    if (withPairs.length > 0) return super.step(withPairs);
    this.optimizer.step++;
    this.#skipped++;
  }

  /** The trainer's metrics plus the sampling's, averaged over the steps since the last read. */
  override async readMetrics(): Promise<StepMetrics> {
    const out = await super.readMetrics();
    const steps = this.#window.filter((s) => s.length > 0);
    const perStep = (f: (b: SampledBatch[]) => number[]) => {
      const values = steps.map((s) => f(s)).filter((v) => v.length > 0).map(mean);
      return values.length ? mean(values) : undefined;
    };
    const put = (name: string, value: number | undefined) => {
      if (value !== undefined) out[name] = value;
    };
    put("objective/scores", perStep((s) => s.flatMap((b) => b.rewards)));
    put("scores/chosen", perStep((s) => s.flatMap((b) => b.chosenRewards)));
    put("scores/rejected", perStep((s) => s.flatMap((b) => b.rejectedRewards)));
    put(
      "objective/scores_margin",
      perStep((s) => s.flatMap((b) => b.chosenRewards.map((c, i) => c - b.rejectedRewards[i]))),
    );
    put("val/contain_eos_token", perStep((s) => s.map((b) => b.containEos)));
    put("objective/entropy", perStep((s) => s.map((b) => b.entropy)));
    const all = steps.flat();
    const sum = (f: (b: SampledBatch) => number) => all.reduce((n, b) => n + f(b), 0);
    out.pairs = sum((b) => b.chosenRewards.length);
    out.tied = sum((b) => b.tied);
    out.sampled_tokens = sum((b) => b.sampledTokens);
    out.trained_tokens = sum((b) => b.micro.batch.tokenCounts.reduce((a, c) => a + c, 0));
    out.skipped_steps = this.#skipped;
    this.#window = [[]];
    this.#skipped = 0;
    return out;
  }
}
