/**
 * Evaluation of a policy against its reference, as the DPO paper's controlled-sentiment
 * experiment measures it (Rafailov et al. 2023, §6.1): on held-out prompts the policy samples at
 * temperature 1 and we report the mean ground-truth reward of its completions (with its spread
 * over sampling seeds), the mean sequence-level KL(π ‖ ref) along those samples (src/eval/kl.ts),
 * the mean completion length, and, on held-out preference pairs, the accuracy of the implicit
 * reward β log π/ref and the mean log-probs of the chosen and rejected completions.
 *
 * {@link evaluateModel} works on loaded models, and {@link evalTable} and {@link sideBySide} shape
 * the results for `renderReport`; `evaluateFolders` (./compare.ts) loads two model folders and
 * evaluates both.
 *
 * @module
 */

import type { ChatTokenizer, PreferenceExample } from "../data/mod.ts";
import { LlamaModel, type LlamaModelOptions } from "../model/llama.ts";
import { longestPair } from "../data/prepare.ts";
import { scorePairs } from "../model/scoring.ts";
import {
  PREFERENCE_LOSS_DEFAULTS,
  preferenceLossWith,
  preferenceMetrics,
  resolveLossSpec,
} from "../backend/mod.ts";
import { generate } from "./sample.ts";
import { sequenceKl } from "./kl.ts";
import { distinctN } from "./diversity.ts";
import type { EvalTable, ReportSample } from "./report.ts";

/** A held-out prompt: its text (for the reward) and its ids (for sampling). */
export interface EvalPrompt {
  /** The prompt text. */
  text: string;
  /** Its token ids. */
  ids: number[];
}

/** Bad evaluation input (prompts file, mismatched models): exit code 2 on the command line. */
export class EvalInputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "EvalInputError";
  }
}

/**
 * Token ids of plain-text prompts, as training encodes a standard prompt (src/data/encode.ts):
 * BOS where the tokenizer adds it, then the text's ids.
 * @throws EvalInputError when a prompt encodes to no tokens.
 */
export function encodePrompts(tokenizer: ChatTokenizer, texts: readonly string[]): EvalPrompt[] {
  const bos = tokenizer.addsBos && tokenizer.bosTokenId !== null ? [tokenizer.bosTokenId] : [];
  return texts.map((text, i) => {
    const ids = [...bos, ...tokenizer.encode(text)];
    if (ids.length === 0) throw new EvalInputError(`prompt ${i + 1} encodes to no tokens`);
    return { text, ids };
  });
}

/** A ground-truth reward of a completion given its prompt (the world's is `sentimentReward`). */
export type Reward = (completion: string, prompt: string) => number;

/** Options of {@link evaluateModel}. */
export interface EvaluateOptions {
  /** Sampling seeds; every prompt is sampled once per seed. @default [0, 1, 2] */
  seeds?: readonly number[];
  /** Tokens generated per prompt at most (EOS included). @default 32 */
  maxNewTokens?: number;
  /** Prompts sampled, sequences scored and (halved) pairs scored at once. @default 32 */
  batchSize?: number;
  /** Ids that end a completion. @default the tokenizer's EOS and the config's eos_token_id */
  eosTokenIds?: readonly number[];
  /** Held-out preference pairs for the implicit-reward accuracy and log-probs. */
  pairs?: readonly PreferenceExample[];
  /** β of the implicit reward β (log π - log ref). @default PREFERENCE_LOSS_DEFAULTS.beta */
  beta?: number;
  /** Samples kept for display (the first prompts, first seed). @default 4 */
  sampleCount?: number;
  /** Ground-truth reward of a completion given its prompt (the world's is `sentimentReward`). */
  reward: Reward;
  /** Progress of each stage ("sampling", "kl", "pairs"). */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** One displayed completion. */
export interface EvalSample {
  /** The prompt text. */
  prompt: string;
  /** The sampled completion. */
  completion: string;
  /** Its ground-truth reward. */
  reward: number;
  /** Generated tokens (an ending EOS included). */
  tokens: number;
}

/** Held-out pair metrics (TRL's eval names without the prefix). */
export interface PairMetrics {
  /** Pairs scored. */
  count: number;
  /** Fraction of pairs whose chosen implicit reward is strictly above the rejected one. */
  accuracy: number;
  /** Mean implicit reward margin, chosen minus rejected. */
  margin: number;
  /** Mean sigmoid DPO loss at `beta`. */
  loss: number;
  /** Mean log-prob of the chosen completions. */
  chosenLogps: number;
  /** Mean log-prob of the rejected completions. */
  rejectedLogps: number;
}

/** What {@link evaluateModel} measures. Means are over prompts and seeds. */
export interface ModelEvaluation {
  /** Prompts evaluated. */
  prompts: number;
  /** Sampling seeds used. */
  seeds: number[];
  /** Mean ground-truth reward over prompts and seeds. */
  reward: number;
  /** Sample standard deviation of the reward over seeds (0 for one seed). */
  rewardStd: number;
  /** Mean reward of each seed. */
  rewardBySeed: number[];
  /** Mean sequence KL(π ‖ ref) (Σ over positions of the full-vocabulary KL). */
  kl: number;
  /** Sample standard deviation of the KL over seeds. */
  klStd: number;
  /** Mean KL of each seed. */
  klBySeed: number[];
  /** Mean of log π(y) - log ref(y): the one-sample KL estimate, noisier, for comparison. */
  logRatio: number;
  /** Mean completion length in tokens (EOS counted). */
  length: number;
  /** Mean over sampled tokens of the policy's next-token entropy −Σ p log p (nats). */
  entropy: number;
  /** The entropy of each seed. */
  entropyBySeed: number[];
  /** Unique token unigrams / all unigrams of a seed's completions (EOS left out), mean of seeds. */
  distinct1: number;
  /** The same for bigrams (./diversity.ts). */
  distinct2: number;
  /** Fraction of completions that ended with EOS. */
  eosFraction: number;
  /** Present when pairs were given. */
  pairs?: PairMetrics;
  /** The first prompts' completions of the first seed. */
  samples: EvalSample[];
  /** Whether the policy was its own reference (KL 0, implicit rewards 0). */
  isReference: boolean;
  /** Wall time in seconds. */
  seconds: number;
  /** Seconds of sampling, KL and pair scoring. */
  timings: { sampling: number; kl: number; pairs: number };
}

const mean = (xs: ArrayLike<number>) =>
  xs.length ? Array.from(xs).reduce((a, b) => a + b, 0) / xs.length : 0;
const std = (xs: readonly number[]) => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
};

/**
 * Implicit-reward metrics of held-out pairs, as TRL's DPO eval (and `evaluatePairs` in
 * src/pipeline/dpo.ts) defines them: rewards β (log π - log ref) of the chosen and the rejected
 * completion, accuracy = fraction with chosen reward > rejected reward (strict, so a policy equal
 * to its reference scores 0), the sigmoid DPO loss -log σ(margin) (Rafailov et al. 2023, Eq. 7).
 */
export function pairMetrics(
  policyChosen: ArrayLike<number>,
  policyRejected: ArrayLike<number>,
  referenceChosen: ArrayLike<number>,
  referenceRejected: ArrayLike<number>,
  beta: number,
): PairMetrics {
  // The same loss code as training: the sigmoid loss at this β, TRL's metric definitions.
  const spec = resolveLossSpec({ lossType: "sigmoid", beta });
  const r = preferenceLossWith(
    spec,
    policyChosen,
    policyRejected,
    referenceChosen,
    referenceRejected,
  );
  const m = preferenceMetrics(r, policyChosen, policyRejected, spec);
  return {
    count: policyChosen.length,
    accuracy: m["rewards/accuracies"],
    margin: m["rewards/margins"],
    loss: m.loss,
    chosenLogps: m["logps/chosen"],
    rejectedLogps: m["logps/rejected"],
  };
}

/** Model capacity (maxBatch, maxSeqLen) that {@link evaluateModel} needs for these inputs. */
export function evalCapacity(
  prompts: readonly EvalPrompt[],
  { maxNewTokens = 32, batchSize = 32, pairs = [] }: Partial<EvaluateOptions> = {},
): LlamaModelOptions {
  const longestPrompt = Math.max(1, ...prompts.map((p) => p.ids.length));
  const maxSeqLen = Math.max(longestPrompt + maxNewTokens, pairs.length ? longestPair(pairs) : 1);
  return { maxBatch: Math.max(2, batchSize, pairs.length ? 2 * batchSize : 0), maxSeqLen };
}

/**
 * Samples every prompt with `policy` once per seed at temperature 1 and measures reward, KL
 * against `reference`, length and, with `pairs`, the implicit-reward metrics. Both models need
 * the capacity of {@link evalCapacity}; pass the same model twice to evaluate the reference.
 *
 * @example
 * ```ts
 * const prompts = encodePrompts(tokenizer, ["the soup was"]);
 * const result = await evaluateModel(policy, reference, tokenizer, prompts, { seeds: [0, 1, 2] });
 * console.log(result.reward, result.rewardStd, result.kl);
 * ```
 */
export async function evaluateModel(
  policy: LlamaModel,
  reference: LlamaModel,
  tokenizer: ChatTokenizer,
  prompts: readonly EvalPrompt[],
  options: EvaluateOptions,
): Promise<ModelEvaluation> {
  const start = performance.now();
  const {
    seeds = [0, 1, 2],
    maxNewTokens = 32,
    batchSize = 32,
    beta = PREFERENCE_LOSS_DEFAULTS.beta,
    sampleCount = 4,
    reward,
    onProgress,
  } = options;
  if (prompts.length === 0) throw new RangeError("evaluateModel: no prompts");
  if (seeds.length === 0) throw new RangeError("evaluateModel: give at least one seed");
  const configEos = policy.config.eosTokenId === null ? [] : [policy.config.eosTokenId].flat();
  const eosTokenIds = options.eosTokenIds ??
    [...new Set([...configEos, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])])];
  const eos = new Set(eosTokenIds);
  const isReference = policy === reference;

  const rewardBySeed: number[] = [], klBySeed: number[] = [], logRatios: number[] = [];
  const lengths: number[] = [];
  const entropyBySeed: number[] = [], distinct1: number[] = [], distinct2: number[] = [];
  let ended = 0;
  const samples: EvalSample[] = [];
  const timings = { sampling: 0, kl: 0, pairs: 0 };
  for (const [s, seed] of seeds.entries()) {
    let t0 = performance.now();
    onProgress?.(`sampling (seed ${seed})`, 0, prompts.length);
    const outs = await generate(policy, prompts.map((p) => p.ids), {
      maxNewTokens,
      temperature: 1,
      seed,
      batchSize,
      eosTokenIds,
      padTokenId: tokenizer.padTokenId,
      onProgress: (done, total) => onProgress?.(`sampling (seed ${seed})`, done, total),
    });
    const rewards = outs.map((o, i) => {
      const ends = o.tokens.length > 0 && eos.has(o.tokens[o.tokens.length - 1]);
      if (ends) ended++;
      lengths.push(o.tokens.length);
      const completion = tokenizer.decode(ends ? o.tokens.slice(0, -1) : o.tokens);
      const r = reward(completion, prompts[i].text);
      if (s === 0 && i < sampleCount) {
        samples.push({ prompt: prompts[i].text, completion, reward: r, tokens: o.tokens.length });
      }
      return r;
    });
    rewardBySeed.push(mean(rewards));
    const texts = outs.map((o) => eos.has(o.tokens.at(-1)!) ? o.tokens.slice(0, -1) : o.tokens);
    distinct1.push(distinctN(texts, 1));
    distinct2.push(distinctN(texts, 2));
    timings.sampling += (performance.now() - t0) / 1000;
    t0 = performance.now();
    onProgress?.(`KL (seed ${seed})`, 0, outs.length);
    const kl = await sequenceKl(
      policy,
      reference,
      outs.map((o, i) => ({ promptIds: prompts[i].ids, completionIds: o.tokens })),
      { batchSize, onProgress: (done, total) => onProgress?.(`KL (seed ${seed})`, done, total) },
    );
    const tokens = outs.reduce((n, o) => n + o.tokens.length, 0);
    entropyBySeed.push(tokens ? kl.entropy.reduce((a, b) => a + b, 0) / tokens : 0);
    // The reference's own KL is exactly 0 (the same logits twice); its entropy is still measured.
    klBySeed.push(isReference ? 0 : mean(kl.kl));
    logRatios.push(
      ...kl.policyLogps.map((lp, i) => isReference ? 0 : lp - kl.referenceLogps[i]),
    );
    timings.kl += (performance.now() - t0) / 1000;
  }

  let pairs: PairMetrics | undefined;
  if (options.pairs?.length) {
    const examples = options.pairs;
    const capacity = Math.min(policy.options.maxBatch, reference.options.maxBatch);
    const pairBatch = Math.max(1, Math.min(batchSize, Math.floor(capacity / 2)));
    const score = (model: LlamaModel) =>
      scorePairs(model, examples, {
        batchSize: pairBatch,
        padTokenId: tokenizer.padTokenId,
        onProgress: (done) => onProgress?.("pairs", done, examples.length),
      });
    const t0 = performance.now();
    onProgress?.("pairs", 0, examples.length);
    const pol = await score(policy);
    const ref = isReference ? pol : await score(reference);
    timings.pairs = (performance.now() - t0) / 1000;
    pairs = pairMetrics(
      pol.chosenLogps,
      pol.rejectedLogps,
      ref.chosenLogps,
      ref.rejectedLogps,
      beta,
    );
  }
  return {
    prompts: prompts.length,
    seeds: [...seeds],
    reward: mean(rewardBySeed),
    rewardStd: std(rewardBySeed),
    rewardBySeed,
    kl: mean(klBySeed),
    klStd: std(klBySeed),
    klBySeed,
    logRatio: mean(logRatios),
    length: mean(lengths),
    entropy: mean(entropyBySeed),
    entropyBySeed,
    distinct1: mean(distinct1),
    distinct2: mean(distinct2),
    eosFraction: ended / lengths.length,
    ...(pairs ? { pairs } : {}),
    samples,
    isReference,
    seconds: (performance.now() - start) / 1000,
    timings,
  };
}

/**
 * The evaluation table of `renderReport`: one row per named evaluation (e.g. SFT and DPO), with
 * reward ± its spread over seeds, KL, length and, when pairs were scored, accuracy and log-probs.
 * The reference's implicit-reward accuracy is shown as "—" (its implicit rewards are all 0).
 */
export function evalTable(entries: ReadonlyArray<readonly [string, ModelEvaluation]>): EvalTable {
  const withPairs = entries.some(([, e]) => e.pairs);
  const columns = ["model", "reward", "reward sd (seeds)", "KL(π‖ref)", "length"];
  columns.push("entropy/token", "distinct-1", "distinct-2");
  if (withPairs) columns.push("pref. accuracy", "logps/chosen", "logps/rejected");
  const rows = entries.map(([name, e]) => {
    const row: Record<string, string | number> = {
      model: name,
      reward: e.reward,
      "reward sd (seeds)": e.rewardStd,
      "KL(π‖ref)": e.kl,
      length: e.length,
      "entropy/token": e.entropy,
      "distinct-1": e.distinct1,
      "distinct-2": e.distinct2,
    };
    if (withPairs) {
      row["pref. accuracy"] = e.pairs && !e.isReference ? e.pairs.accuracy : "—";
      row["logps/chosen"] = e.pairs ? e.pairs.chosenLogps : "—";
      row["logps/rejected"] = e.pairs ? e.pairs.rejectedLogps : "—";
    }
    return row;
  });
  return { columns, rows };
}

/** Samples of several evaluations side by side, prompt by prompt, each with its reward. */
export function sideBySide(
  entries: ReadonlyArray<readonly [string, ModelEvaluation]>,
): ReportSample[] {
  const count = Math.min(...entries.map(([, e]) => e.samples.length));
  return Array.from({ length: count }, (_, i) => ({
    prompt: entries[0][1].samples[i].prompt,
    columns: Object.fromEntries(
      entries.map(([name, e]) => {
        const s = e.samples[i];
        return [name, `${s.completion.trim()}  [reward ${s.reward.toFixed(2)}]`];
      }),
    ),
  }));
}
