/**
 * Iterative DPO and RSO in rounds, on the project's own stages: a round is
 * sample -> label (./label.ts) -> precompute (the reference cache of that round's pairs) -> one
 * round of DPO loading only the policy (./dpo.ts). Round r lives in `<outputDir>/round-<r>/`
 * (pairs.jsonl, ref_cache.bin, policy/); the policy of round r starts from round r-1's. The
 * reference stays the starting (SFT) model unless `refUpdate` is "round", where it is the round's
 * starting policy. RSO is one round whose labelling is Liu et al.'s rejection sampling.
 *
 * Each stage of a round is skipped when its manifest says it is up to date, so a rerun after an
 * interruption continues at the first unfinished round, and with `resume` the unfinished round's
 * DPO continues from its newest checkpoint: resume at round and at step granularity. Everything
 * is seeded (sampling by (seed, round), batches by seed), so a rerun is bit-identical.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import type { PreferenceLossOptions } from "../backend/losses.ts";
import type { RewardModule } from "../eval/reward_fn.ts";
import type { OptimizerOptions } from "../train/optimizer.ts";
import type { TokenOptions } from "../data/prepare.ts";
import type { LoopOptions } from "./loop.ts";
import { type LabelResult, type LabelRule, runLabel } from "./label.ts";
import { runPrecompute } from "./precompute.ts";
import { runDpo } from "./dpo.ts";
import type { StageHooks } from "./stage.ts";

/** Options of {@link runRounds}. */
export interface RoundsOptions extends PreferenceLossOptions {
  /** The starting policy and default reference (the SFT model). */
  model: string;
  /** Training prompts (JSONL with "prompt", or text lines). */
  prompts: string;
  /** Where the rounds and metrics.jsonl go. */
  outputDir: string;
  /** Rounds. @default 3 */
  rounds?: number;
  /** "none": the reference stays `model`; "round": each round's starting policy. @default none */
  refUpdate?: "none" | "round";
  /** Samples per prompt (K). @default 4 */
  samplesPerPrompt?: number;
  /** Tokens per sample at most. @default 32 */
  maxNewTokens?: number;
  /** Sampling temperature. @default 1 */
  temperature?: number;
  /** The labelling rule. @default best-worst */
  rule?: LabelRule;
  /** The reward. */
  reward: RewardModule;
  /** Token options of the pairs. */
  tokenOptions?: TokenOptions;
  /** Each round's optimizer. */
  optimizer?: OptimizerOptions;
  /** Each round's loop (its seed also seeds the sampling). */
  loop: LoopOptions;
  /** Continue an unfinished round's DPO from its newest checkpoint. */
  resume?: boolean;
  /** Redo every stage. */
  force?: boolean;
}

/** One round's outcome. */
export interface RoundResult {
  round: number;
  label: LabelResult;
  /** Tokens the DPO stage trained on (pairs × epochs, both sequences, padding excluded). */
  trainedTokens: number;
  rows: Array<Record<string, number>>;
  /** The round's policy folder. */
  policy: string;
}

/** The folder of round `r`. */
export function roundDir(outputDir: string, r: number): string {
  return joinPath(outputDir, `round-${r}`);
}

/** Hooks of the rounds: the stage hooks of each stage, and the start of each round. */
export interface RoundHooks {
  stage(name: "label" | "precompute" | "dpo", round: number): StageHooks;
  onRound?: (round: number, total: number) => void;
}

/**
 * Runs the rounds; writes `<outputDir>/metrics.jsonl` (every round's DPO rows with `round`) and
 * `<outputDir>/policy` is left to the caller (the last round's policy folder is returned).
 */
export async function runRounds(
  store: FileStore,
  backend: Backend,
  o: RoundsOptions,
  hooks: RoundHooks,
): Promise<RoundResult[]> {
  const rounds = o.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`rounds (--rounds) must be an integer >= 1, got ${rounds}`);
  }
  const results: RoundResult[] = [];
  let policy = o.model;
  for (let r = 1; r <= rounds; r++) {
    hooks.onRound?.(r, rounds);
    const dir = roundDir(o.outputDir, r);
    const label = await runLabel(store, backend, {
      policy,
      prompts: o.prompts,
      outputDir: dir,
      round: r,
      samplesPerPrompt: o.samplesPerPrompt,
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      seed: o.loop.seed,
      rule: o.rule,
      reward: o.reward,
      force: o.force,
    }, hooks.stage("label", r));
    const reference = o.refUpdate === "round" ? policy : o.model;
    const refCache = joinPath(dir, "ref_cache.bin");
    await runPrecompute(store, backend, {
      model: reference,
      data: { path: label.pairsFile },
      tokenOptions: o.tokenOptions,
      output: refCache,
      force: o.force,
    }, hooks.stage("precompute", r));
    const policyDir = joinPath(dir, "policy");
    const { loop: _l, prompts: _p, rounds: _r, reward: _w, rule: _u, ...loss } = o;
    const dpo = await runDpo(store, backend, {
      ...lossOptions(loss),
      model: policy,
      data: { path: label.pairsFile },
      refCache,
      outputDir: policyDir,
      tokenOptions: o.tokenOptions,
      optimizer: o.optimizer,
      loop: { ...o.loop, seed: o.loop.seed === undefined ? undefined : o.loop.seed + r - 1 },
      resume: o.resume,
      force: o.force,
      overwriteOutputDir: true,
    }, hooks.stage("dpo", r));
    results.push({
      round: r,
      label,
      trainedTokens: await trainedTokens(store, label.pairsFile, o.loop),
      rows: dpo.rows.map((row) => ({ ...row, round: r })),
      policy: policyDir,
    });
    policy = policyDir;
  }
  const lines = results.flatMap((r) => r.rows).map((row) => JSON.stringify(row));
  await store.writeFileAtomic(
    joinPath(o.outputDir, "metrics.jsonl"),
    new TextEncoder().encode(lines.join("\n") + "\n"),
  );
  return results;
}

/** The preference-loss fields of the options (the rest belongs to the rounds). */
function lossOptions(o: Record<string, unknown>): PreferenceLossOptions {
  const keys = [
    "lossType",
    "lossWeights",
    "beta",
    "labelSmoothing",
    "fDivergenceType",
    "fAlphaDivergenceCoef",
    "referenceFree",
    "rdpoAlpha",
    "simpoGamma",
    "discopopTau",
    "ipoLengthNormalized",
  ];
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
}

/** Completion tokens of a pairs file, both sides, times the epochs a round trains. */
async function trainedTokens(store: FileStore, pairsFile: string, loop: LoopOptions) {
  const rows = (await store.readText(pairsFile)).split("\n").filter((l) => l.trim());
  let tokens = 0;
  for (const line of rows) {
    const row = JSON.parse(line);
    tokens += row.prompt_input_ids.length * 2 + row.chosen_input_ids.length +
      row.rejected_input_ids.length;
  }
  const epochs = loop.maxSteps && loop.maxSteps > 0
    ? loop.maxSteps * loop.batchSize * (loop.gradientAccumulationSteps ?? 1) / rows.length
    : loop.numTrainEpochs ?? 1;
  return Math.round(tokens * epochs);
}
