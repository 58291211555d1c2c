/**
 * The DPO paper's first experiment in miniature (Rafailov et al. 2023, §6.1, Fig. 2 left):
 * DPO at several β and Preferred-FT (SFT on the chosen completions only), all from the same SFT
 * model, each evaluated every k steps by sampling held-out prompts: expected ground-truth reward
 * against the sequence-level KL(π ‖ π_ref). One point per evaluation; the better method reaches
 * more reward at equal KL.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { collatePreference, collateSft, loadTokenizer, readPrompts } from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { readModelFolder } from "../model/model_folder.ts";
import { LlamaModel } from "../model/llama.ts";
import { encodePrompts, evalCapacity, evaluateModel, type Reward } from "../eval/evaluate.ts";
import { frontierChart, type FrontierPoint, lengthChart } from "../eval/frontier_chart.ts";
import { renderSvg } from "../eval/charts.ts";
import { renderReport } from "../eval/report.ts";
import { DeviceOptimizer, type OptimizerOptions } from "../train/optimizer.ts";
import { type Objective, Trainer } from "../train/trainer.ts";
import { type PreferenceLossOptions, resolveLossSpec } from "../backend/losses.ts";
import type { PreferenceExample } from "../data/mod.ts";
import { longestPair, preparePairs, type TokenOptions } from "../data/prepare.ts";
import { readCache } from "../cache/columns.ts";
import { assertCacheFits } from "../cache/identity.ts";
import { loopDefaults, type LoopOptions, runLoop, totalSteps } from "./loop.ts";

/** One method of the frontier. */
export interface FrontierMethod {
  /** `dpo` (any preference loss of the DPO family) or `preferred-ft`. */
  method: "dpo" | "preferred-ft";
  /** β of the preference loss. @default 0.1 */
  beta?: number;
  /** The preference loss (types and their options; β is `beta`). @default sigmoid */
  loss?: Omit<PreferenceLossOptions, "beta">;
  /** Series name of the chart, e.g. "R-DPO". @default "DPO" or "Preferred-FT" */
  name?: string;
  /** This run's pairs and their reference cache. @default the options' */
  data?: { preferenceData: string; refCache: string };
}

/** Options of {@link runFrontier}. */
export interface FrontierOptions {
  /** The SFT model every method starts from, and the reference of KL and DPO. */
  sftModel: string;
  /** Preference pairs. */
  preferenceData: string;
  /** The reference cache computed from `preferenceData` with the SFT model. */
  refCache: string;
  /** Held-out prompts for the evaluations. */
  prompts: string;
  /** The ground-truth reward measured on their completions. */
  reward: Reward;
  /** Where frontier.json and report.html go. */
  outputDir: string;
  /** The methods to train and evaluate, in order. */
  methods: FrontierMethod[];
  /** Options that change token ids. */
  tokenOptions?: TokenOptions;
  /** DPO's optimizer; Preferred-FT uses `preferredFtOptimizer`. */
  optimizer: OptimizerOptions;
  /** Preferred-FT's optimizer. @default `optimizer` */
  preferredFtOptimizer?: OptimizerOptions;
  /** Loop; `evalSteps` is the k of "evaluated every k steps". */
  loop: LoopOptions;
  /** Sampling seeds of each evaluation. */
  evalSeeds?: number[];
  /** Most new tokens of each evaluation sample. */
  maxNewTokens?: number;
  /** Use only the first n prompts. */
  promptLimit?: number;
}

/**
 * Runs every method and returns the frontier points; writes frontier.json, report.html and its
 * two charts alone as frontier.svg and length.svg (for a README).
 */
export async function runFrontier(
  store: FileStore,
  backend: Backend,
  o: FrontierOptions,
  hooks: {
    log?: (m: string) => void;
    onStep?: (label: string, step: number, total: number) => void;
  } = {},
): Promise<FrontierPoint[]> {
  const tokenizer = await loadTokenizer(store, o.sftModel);
  // Each distinct (pairs, cache) of the methods, loaded once.
  const sets = new Map<string, PairSet>();
  const dataOf = (m: FrontierMethod) =>
    m.data ?? { preferenceData: o.preferenceData, refCache: o.refCache };
  for (const m of o.methods) {
    const d = dataOf(m);
    const key = JSON.stringify(d);
    if (!sets.has(key)) sets.set(key, await loadPairSet(store, o, d));
  }
  let prompts = encodePrompts(tokenizer, await readPrompts(store, o.prompts));
  if (o.promptLimit) prompts = prompts.slice(0, o.promptLimit);
  const evalOptions = {
    seeds: o.evalSeeds ?? [0],
    maxNewTokens: o.maxNewTokens ?? 16,
    reward: o.reward,
  };
  const capacity = evalCapacity(prompts, { ...evalOptions, batchSize: 64 });
  const loop = loopDefaults(o.loop);
  const { config, rawConfig, weights } = await readModelFolder(store, o.sftModel);
  const reference = new LlamaModel(backend, config, { ...capacity, trainable: false });
  reference.params.writeAll(weights, { source: o.sftModel });
  const modelOptions = {
    maxBatch: Math.max(2 * loop.batchSize, capacity.maxBatch),
    maxSeqLen: Math.max(...[...sets.values()].map((d) => longestPair(d.pairs)), capacity.maxSeqLen),
  };
  // One policy model, reset to the SFT weights for each method: the arenas are allocated once.
  const policy = new LlamaModel(backend, config, modelOptions);
  const padTokenId = tokenizer.padTokenId;
  const points: FrontierPoint[] = [];
  for (const m of o.methods) {
    const { pairs, chosenRef, rejectedRef } = sets.get(JSON.stringify(dataOf(m)))!;
    const name = m.name ?? (m.method === "dpo" ? "DPO" : "Preferred-FT");
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    const spec = resolveLossSpec({ ...m.loss, beta: m.beta });
    const label = m.method === "dpo" ? `${slug}-beta${spec.beta}` : slug;
    hooks.log?.(`training ${label}`);
    policy.params.writeAll(weights, { source: o.sftModel });
    const optimizer = new DeviceOptimizer(backend, policy.layout, {
      ...(m.method === "dpo" ? o.optimizer : o.preferredFtOptimizer ?? o.optimizer),
      totalSteps: totalSteps(pairs.length, loop),
    });
    const objective: Objective = m.method === "dpo"
      ? { kind: "preference", spec }
      : { kind: "nll" };
    const trainer = new Trainer(policy, optimizer, objective);
    const evaluate = async () => {
      const e = await evaluateModel(policy, reference, tokenizer, prompts, evalOptions);
      return {
        reward: e.reward,
        kl: e.kl,
        length: e.length,
        entropy: e.entropy,
        distinct_2: e.distinct2,
      };
    };
    const start = await evaluate();
    const { distinct_2: distinct2, ...first } = start;
    points.push({ method: name, beta: m.beta, step: 0, ...first, distinct2 });
    const rows = await runLoop({
      store,
      outputDir: joinPath(o.outputDir, label),
      model: policy,
      optimizer,
      trainer,
      examples: pairs.length,
      options: loop,
      tokenizerFrom: o.sftModel,
      rawConfig,
    }, {
      microBatch: (indices) => {
        const part = indices.map((i) => pairs[i]);
        if (m.method === "preferred-ft") {
          const batch = collateSft(
            part.map((e) => ({ promptIds: e.promptIds, completionIds: e.chosenIds })),
            { padTokenId },
          );
          return { batch };
        }
        const batch = collatePreference(part, { padTokenId });
        const P = part.length;
        const referenceLogps = new Float64Array(2 * P);
        indices.forEach((i, j) => {
          referenceLogps[j] = chosenRef[i];
          referenceLogps[P + j] = rejectedRef[i];
        });
        return { batch, referenceLogps };
      },
      evaluate,
      onStep: (step, total) => hooks.onStep?.(label, step, total),
    });
    for (const r of rows) {
      if ("eval_reward" in r) {
        points.push({
          method: name,
          beta: m.beta,
          step: r.step,
          reward: r.eval_reward,
          kl: r.eval_kl,
          length: r.eval_length,
          entropy: r.eval_entropy,
          distinct2: r.eval_distinct_2,
        });
      }
    }
  }
  await store.mkdirp(o.outputDir);
  await store.writeFileAtomic(
    joinPath(o.outputDir, "frontier.json"),
    new TextEncoder().encode(JSON.stringify(points, null, 1) + "\n"),
  );
  const html = await renderReport({ title: "Reward–KL frontier", metrics: [], frontier: points });
  await store.writeFileAtomic(joinPath(o.outputDir, "report.html"), new TextEncoder().encode(html));
  for (const chart of [frontierChart(points), lengthChart(points)]) {
    if (!chart) continue;
    const svg = await renderSvg(chart.spec, chart.id);
    await store.writeFileAtomic(
      joinPath(o.outputDir, `${chart.id}.svg`),
      new TextEncoder().encode(svg),
    );
  }
  return points;
}

/** A run's training pairs and their reference log-probs. */
interface PairSet {
  pairs: PreferenceExample[];
  chosenRef: Float64Array;
  rejectedRef: Float64Array;
}

async function loadPairSet(
  store: FileStore,
  o: FrontierOptions,
  d: { preferenceData: string; refCache: string },
): Promise<PairSet> {
  const { prepared } = await preparePairs(
    store,
    o.sftModel,
    { path: d.preferenceData },
    undefined,
    o.tokenOptions,
  );
  const cache = await readCache(store, d.refCache);
  assertCacheFits(cache.header, prepared, d.refCache);
  return {
    pairs: prepared.sections[0].examples,
    chosenRef: cache.columns.chosen_logp as Float64Array,
    rejectedRef: cache.columns.rejected_logp as Float64Array,
  };
}
