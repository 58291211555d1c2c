/**
 * What `deno task iterative-dpo` and `deno task rso` share: their flags (the dpo task's loss,
 * training and data flags plus the sampling and reward flags) and a main that runs the rounds of
 * src/pipeline/iterative.ts with progress per round and per step.
 */

import { type Flags, type FlagSpec, UsageError } from "./_cli.ts";
import {
  checkTrainFlags,
  COMMON_FLAGS,
  DATA_FLAGS,
  deviceOf,
  loopOf,
  LOSS_FLAGS,
  lossOptionsOf,
  optimizerOf,
  required,
  tokenOptionsOf,
  TRAIN_FLAGS,
} from "./_flags.ts";
import { openBackend, stageHooks, store } from "./_stage.ts";
import { loadReward, REWARD_FLAG } from "./_reward.ts";
import { type RoundResult, runRounds } from "../src/pipeline/iterative.ts";
import type { LabelRule } from "../src/pipeline/label.ts";

/** Sampling flags of the on-policy commands. */
export const SAMPLING_FLAGS: Record<string, FlagSpec> = {
  prompts: { type: "string", help: 'training prompts: JSONL with a "prompt" per line, or text' },
  "samples-per-prompt": { type: "number", default: 4, help: "completions sampled per prompt (K)" },
  "max-new-tokens": { type: "number", default: 32, help: "tokens per completion at most" },
  temperature: { type: "number", default: 1, help: "sampling temperature" },
  ...REWARD_FLAG,
};

/** The flags of a rounds command. */
export function roundsFlags(extra: Record<string, FlagSpec>): Record<string, FlagSpec> {
  return {
    model: { type: "string", help: "the SFT model: starting policy and reference" },
    "output-dir": { type: "string", help: "where the rounds, metrics.jsonl and policy go" },
    ...extra,
    ...SAMPLING_FLAGS,
    ...LOSS_FLAGS,
    force: { type: "boolean", default: false, help: "redo every stage even when up to date" },
    ...TRAIN_FLAGS,
    "learning-rate": { ...TRAIN_FLAGS["learning-rate"], default: 5e-6 },
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  };
}

function positiveInt(f: Flags, key: string, flag: string, min: number): number {
  const n = Number(f[key]);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${flag}: expected an integer >= ${min}, got ${f[key]}`);
  }
  return n;
}

/** Runs the rounds of a rounds command; prints a line per round and the JSON with --json. */
export async function mainRounds(
  label: string,
  f: Flags,
  rule: LabelRule,
  rounds: number,
  refUpdate: "none" | "round",
): Promise<RoundResult[]> {
  checkTrainFlags(f);
  const loss = lossOptionsOf(f);
  const model = required(f, "model"), outputDir = required(f, "outputDir");
  const prompts = required(f, "prompts");
  const K = positiveInt(f, "samplesPerPrompt", "samples-per-prompt", 2);
  const maxNewTokens = positiveInt(f, "maxNewTokens", "max-new-tokens", 1);
  if (!(Number(f.temperature) > 0)) throw new UsageError("--temperature: must be > 0");
  if (!await store.exists(`${model}/config.json`)) {
    throw new UsageError(`--model: ${model} is not a model folder (no config.json)`);
  }
  if (!await store.exists(prompts)) throw new UsageError(`--prompts: ${prompts}: no such file`);
  const reward = await loadReward(f.reward as string | undefined);
  const backend = await openBackend(deviceOf(f), f);
  const start = performance.now();
  const keys = ["loss", "rewards/accuracies", "rewards/margins"];
  const bars: Array<{ finish(): void }> = [];
  const results = await runRounds(store, backend, {
    ...loss,
    model,
    prompts,
    outputDir,
    rounds,
    refUpdate,
    samplesPerPrompt: K,
    maxNewTokens,
    temperature: Number(f.temperature),
    rule,
    reward,
    tokenOptions: tokenOptionsOf(f),
    optimizer: optimizerOf(f),
    loop: loopOf(f),
    resume: f.resume as boolean,
    force: f.force as boolean,
  }, {
    onRound: (r, total) => {
      bars.splice(0).forEach((b) => b.finish());
      console.error(`${label}: round ${r} of ${total}`);
    },
    stage: (name, r) => {
      const hooks = stageHooks(`${label} round ${r} ${name}`, name === "dpo" ? keys : []);
      bars.push(hooks);
      return hooks;
    },
  });
  bars.forEach((b) => b.finish());
  const seconds = (performance.now() - start) / 1000;
  for (const r of results) {
    const last = r.rows.filter((row) => "loss" in row).at(-1);
    console.error(
      `round ${r.round}: sampled reward ${
        r.label.meanReward.toFixed(4)
      }, ${r.label.pairs} pairs, ` +
        `${r.label.sampledTokens} sampled tokens, ${r.trainedTokens} trained tokens` +
        (last ? `, final loss ${last.loss.toFixed(4)}` : "") + (r.label.skipped ? " (cached)" : ""),
    );
  }
  console.error(`${label} took ${seconds.toFixed(1)} s; policy: ${results.at(-1)!.policy}`);
  if (f.json) {
    console.log(JSON.stringify({
      policy: results.at(-1)!.policy,
      seconds,
      rounds: results.map((r) => ({ ...r, rows: undefined, final: r.rows.at(-1) })),
    }));
  }
  backend.destroy();
  return results;
}
