/**
 * The sample-and-label stage of an on-policy round: the round's policy samples K completions of
 * every prompt on the device (seeded: seed `mixSeed(seed, round)`, prompt i's k-th sample on
 * stream k·N + i), the reward scores them, and the labelling rule (src/eval/labelling.ts) makes
 * the round's preference pairs: best against worst (iterative DPO), or RSO's rejection sampling
 * towards the reward's optimal policy at β, or SPPO's win-rates (each sample's mean preference
 * over the prompt's other samples, by the module's `prefer` or the Bradley-Terry probability of
 * the rewards; highest against lowest, both win-rates written as `chosen_win_rate` and
 * `rejected_win_rate`). The pairs go to `pairs.jsonl` in TRL's pre-tokenized
 * format (prompt_input_ids / chosen_input_ids / rejected_input_ids, the sampled ids as they are),
 * which the precompute and DPO stages then read like any dataset.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { sha256Hex } from "../io/hash.ts";
import { LlamaModel } from "../model/llama.ts";
import { modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { readPrompts } from "../data/prompts.ts";
import { mixSeed, seededRandom } from "../data/sampler.ts";
import { encodePrompts } from "../eval/evaluate.ts";
import { generate } from "../eval/sample.ts";
import { preferenceProbability, type RewardModule, scoreRewards } from "../eval/reward_fn.ts";
import {
  bestWorstPair,
  type LabelledPair,
  rankedPairs,
  rsoAccept,
  winRatePair,
  winRates,
} from "../eval/labelling.ts";
import { openStage, type StageHooks } from "./stage.ts";
import { readManifest } from "./manifest.ts";

/** How a round turns its K samples per prompt into pairs. */
export type LabelRule =
  | { kind: "best-worst" }
  | { kind: "rso"; beta: number; accepted: number }
  | { kind: "win-rate" };

/** Options of {@link runLabel}. */
export interface LabelOptions {
  /** The policy that samples (HF folder with tokenizer files). */
  policy: string;
  /** Prompts file (JSONL with "prompt", or text lines). */
  prompts: string;
  /** Where pairs.jsonl and its manifest go. */
  outputDir: string;
  /** The round (mixed into the sampling seed). */
  round: number;
  /** Samples per prompt (K ≥ 2). @default 4 */
  samplesPerPrompt?: number;
  /** Tokens generated per sample at most (EOS included). @default 32 */
  maxNewTokens?: number;
  /** Sampling temperature. @default 1 */
  temperature?: number;
  /** Seed of the sampling noise (and of RSO's draws). @default 42 */
  seed?: number;
  /** Prompts sampled at once. @default 64 */
  batchSize?: number;
  /** The labelling rule. @default best-worst */
  rule?: LabelRule;
  /** The reward. */
  reward: RewardModule;
  /** Redo even when up to date. */
  force?: boolean;
}

/** What a labelling stage made. */
export interface LabelResult {
  skipped: boolean;
  /** The pairs file. */
  pairsFile: string;
  /** Pairs written. */
  pairs: number;
  /** Prompts that gave no pair (all their rewards tied). */
  tied: number;
  /** Tokens sampled (prompt tokens not counted). */
  sampledTokens: number;
  /** Mean reward of all samples. */
  meanReward: number;
}

/** Samples, scores and labels one round's pairs; skipped when its pairs.jsonl is up to date. */
export async function runLabel(
  store: FileStore,
  backend: Backend,
  o: LabelOptions,
  hooks: StageHooks = {},
): Promise<LabelResult> {
  const K = o.samplesPerPrompt ?? 4, maxNewTokens = o.maxNewTokens ?? 32;
  const temperature = o.temperature ?? 1, seed = o.seed ?? 42, batchSize = o.batchSize ?? 64;
  const rule = o.rule ?? { kind: "best-worst" };
  if (!Number.isInteger(K) || K < 2) {
    throw new RangeError(`samples per prompt (--samples-per-prompt) must be an integer >= 2`);
  }
  const pairsFile = joinPath(o.outputDir, "pairs.jsonl");
  const { config, weights } = await readModelFolder(store, o.policy);
  const texts = await readPrompts(store, o.prompts);
  await store.mkdirp(o.outputDir);
  const stage = await openStage(store, {
    stage: "label",
    manifestPath: joinPath(o.outputDir, "pairs.manifest.json"),
    options: {
      round: o.round,
      samplesPerPrompt: K,
      maxNewTokens,
      temperature,
      seed,
      rule,
      reward: o.reward.source,
    },
    inputs: {
      policy: await modelFingerprint(config, weights),
      prompts: await sha256Hex(await store.readFile(o.prompts)),
    },
    adapter: backend.adapterName,
    outputs: [pairsFile],
    force: o.force,
    log: hooks.log,
  });
  if (stage.upToDate) {
    const previous = await readManifest(store, joinPath(o.outputDir, "pairs.manifest.json"));
    return { ...(previous!.results as Omit<LabelResult, "skipped">), skipped: true, pairsFile };
  }
  try {
    const tokenizer = await loadTokenizer(store, o.policy);
    const prompts = encodePrompts(tokenizer, texts);
    const model = new LlamaModel(backend, config, { maxBatch: 1, maxSeqLen: 1, trainable: false });
    model.params.writeAll(weights, { source: o.policy });
    const configEos = config.eosTokenId === null ? [] : [config.eosTokenId].flat();
    const eosTokenIds = [
      ...new Set([...configEos, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])]),
    ];
    const eos = new Set(eosTokenIds);
    const N = prompts.length;
    // All K·N samples in one list: sample k of prompt i is entry k·N + i (its noise stream).
    const outs = await generate(
      model,
      Array.from({ length: K * N }, (_, s) => prompts[s % N].ids),
      {
        maxNewTokens,
        temperature,
        seed: mixSeed(seed, o.round),
        batchSize,
        eosTokenIds,
        padTokenId: tokenizer.padTokenId,
        onProgress: (done, total) => {
          hooks.signal?.throwIfAborted();
          hooks.onProgress?.(done, total);
        },
      },
    );
    const completions = outs.map((g) =>
      tokenizer.decode(
        g.tokens.length && eos.has(g.tokens.at(-1)!) ? g.tokens.slice(0, -1) : g.tokens,
      )
    );
    const rewards = await scoreRewards(
      o.reward,
      outs.map((_, s) => ({
        promptIndex: s % N,
        prompt: prompts[s % N].text,
        completion: completions[s],
      })),
    );
    const random = seededRandom(mixSeed(mixSeed(seed, o.round), 0x5e1ec7));
    const lines: string[] = [];
    let tied = 0;
    for (let i = 0; i < N; i++) {
      const r = Array.from({ length: K }, (_, k) => rewards[k * N + i]);
      const samples = r.map((reward, k) => ({ reward, completion: completions[k * N + i] }));
      const pairs: Array<LabelledPair & { chosenWinRate?: number; rejectedWinRate?: number }> =
        rule.kind === "rso" ? rankedPairs(rsoAccept(r, rule.beta, rule.accepted, random), r) : [
          rule.kind === "win-rate"
            ? winRatePair(await sampleWinRates(o.reward, i, prompts[i].text, samples))
            : bestWorstPair(r),
        ].filter((p) => p !== undefined);
      if (pairs.length === 0) tied++;
      for (const p of pairs) {
        const chosen = outs[p.chosen * N + i].tokens, rejected = outs[p.rejected * N + i].tokens;
        // Different rewards of one reward function mean different texts; equal ids are skipped.
        if (chosen.join() === rejected.join()) continue;
        lines.push(JSON.stringify({
          prompt_input_ids: prompts[i].ids,
          chosen_input_ids: chosen,
          rejected_input_ids: rejected,
          ...(p.chosenWinRate === undefined
            ? {}
            : { chosen_win_rate: p.chosenWinRate, rejected_win_rate: p.rejectedWinRate }),
        }));
      }
    }
    if (lines.length === 0) {
      throw new RangeError(
        `round ${o.round}: every prompt's ${K} samples got the same reward, so there is no pair ` +
          "to train on: raise --samples-per-prompt or --temperature, or check the reward",
      );
    }
    await store.writeFileAtomic(pairsFile, new TextEncoder().encode(lines.join("\n") + "\n"));
    const results = {
      pairs: lines.length,
      tied,
      sampledTokens: outs.reduce((n, g) => n + g.tokens.length, 0),
      meanReward: rewards.reduce((a, b) => a + b, 0) / rewards.length,
    };
    hooks.log?.(
      `round ${o.round}: ${K} samples of ${N} prompts, mean reward ${
        results.meanReward.toFixed(4)
      }, ${results.pairs} pairs (${tied} prompts tied)`,
    );
    await stage.finish(results);
    return { skipped: false, pairsFile, ...results };
  } finally {
    await stage.release();
  }
}

/**
 * Each sample's win-rate against the prompt's other K−1 samples (SPPO's P̂(y ≻ π_t | x)): the
 * judge is asked about every ordered pair (a, b), a ≠ b, in a fixed order, so a judge that is not
 * symmetric is still read as it answers and a rerun asks the same questions.
 */
export async function sampleWinRates(
  module: RewardModule,
  promptIndex: number,
  prompt: string,
  samples: ReadonlyArray<{ completion: string; reward: number }>,
): Promise<number[]> {
  const K = samples.length;
  const prefer: number[][] = Array.from({ length: K }, () => new Array(K).fill(0.5));
  for (let a = 0; a < K; a++) {
    for (let b = 0; b < K; b++) {
      if (a === b) continue;
      prefer[a][b] = await preferenceProbability(
        module,
        promptIndex,
        prompt,
        samples[a],
        samples[b],
      );
    }
  }
  return winRates(prefer, { against: "others" });
}
