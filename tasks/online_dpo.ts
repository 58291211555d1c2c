/**
 * `deno task online-dpo`: Online DPO with TRL's OnlineDPOTrainer semantics
 * (src/pipeline/online_dpo.ts). Every step samples two completions of each prompt of its batch
 * from the current policy, labels the higher reward chosen, scores the fresh pairs with the frozen
 * reference live (the one stage that cannot use the reference cache) and takes a DPO step.
 *
 * With no --model it runs on the embedded world: the default pipeline's SFT model
 * (runs/<run-name>/sft, trained first when missing or stale), the prompts of
 * data/preferences.jsonl, the world's reward, and the DPO hyperparameters of
 * src/pipeline/defaults.ts wherever a flag is not given.
 */

import { type Flags, givenFlags, parseFlags, runMain, UsageError } from "./_cli.ts";
import {
  checkTrainFlags,
  COMMON_FLAGS,
  deviceOf,
  FROZEN_FLAGS,
  loopOf,
  LOSS_FLAGS,
  lossOptionsOf,
  maxMemoryOf,
  MEMORY_FLAGS,
  optimizerOf,
  TRAIN_FLAGS,
} from "./_flags.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import { loadReward, REWARD_FLAG } from "./_reward.ts";
import { runOnlineDpo } from "../src/pipeline/online_dpo.ts";
import { runSft } from "../src/pipeline/sft.ts";
import { runPaths } from "../src/pipeline/pipeline.ts";
import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { joinPath } from "../src/io/fs.ts";
import type { Backend } from "../src/backend/mod.ts";

const { "eval-data": _d, "eval-fraction": _f, "eval-steps": _s, ...trainFlags } = TRAIN_FLAGS;

const flags = parseFlags(
  "online-dpo",
  "Online DPO: each step samples 2 completions per prompt from the current policy, labels them " +
    "with the reward and takes a DPO step against the live reference. With no --model, runs on " +
    "the embedded world (the default pipeline's SFT model, data/preferences.jsonl prompts).",
  {
    model: {
      type: "string",
      help: "the SFT model: starting policy and frozen reference (default: the embedded world's)",
    },
    prompts: {
      type: "string",
      help: 'training prompts: JSONL with a "prompt" per line, or text (each distinct one once)',
    },
    "output-dir": { type: "string", help: "where the policy, checkpoints and metrics go" },
    "run-name": {
      type: "string",
      default: "default",
      help: "embedded world: runs/<run-name>/sft is the SFT model, output in .../online-dpo",
    },
    "max-new-tokens": { type: "number", default: 32, help: "tokens per completion at most" },
    temperature: { type: "number", default: 1, help: "sampling temperature" },
    ties: {
      type: "string",
      default: "drop",
      choices: ["drop", "first"],
      help: "equal rewards: drop the pair, or first = the first sample chosen (TRL)",
    },
    "missing-eos-penalty": {
      type: "number",
      default: 0,
      help: "subtracted from the reward of a sample that did not end in EOS (TRL)",
    },
    "max-prompt-length": {
      type: "number",
      help: "a longer prompt keeps its last N tokens (default: no limit)",
    },
    ...REWARD_FLAG,
    ...LOSS_FLAGS,
    force: { type: "boolean", default: false, help: "redo the run even when up to date" },
    ...trainFlags,
    "learning-rate": { ...TRAIN_FLAGS["learning-rate"], default: 5e-6 },
    "use-peft": {
      type: "boolean",
      help: "refused: the sampler decodes the base weights only, not LoRA adapters",
    },
    ...MEMORY_FLAGS,
    ...FROZEN_FLAGS,
    ...COMMON_FLAGS,
  },
);

/** The embedded world's model and prompts, and its DPO settings for each flag not given. */
async function worldDefaults(f: Flags, backend: () => Promise<Backend>): Promise<Flags> {
  const root = new URL("../", import.meta.url).pathname;
  const spec = defaultPipelineSpec(root, String(f.runName), false);
  if (!await store.exists(spec.baseModel)) {
    throw new UsageError(
      `the embedded world is missing (${spec.baseModel}): regenerate it with ` +
        "`deno task world && deno task pretrain`, or pass --model and --prompts",
    );
  }
  const paths = runPaths(spec.runDir);
  const hooks = stageHooks("sft", ["loss"]);
  await runStage("sft", paths.sft, hooks, async () =>
    runSft(store, await backend(), {
      model: spec.baseModel,
      data: { path: spec.sftData },
      evalData: spec.sftEvalData,
      outputDir: paths.sft,
      tokenOptions: spec.tokenOptions,
      optimizer: spec.sft.optimizer,
      loop: spec.sft.loop,
      overwriteOutputDir: true,
    }, hooks));
  const given = givenFlags(f);
  const dpo = spec.dpo;
  const world: Record<string, unknown> = {
    prompts: spec.preferenceData,
    outputDir: joinPath(spec.runDir, "online-dpo"),
    maxNewTokens: spec.eval?.maxNewTokens ?? 16,
    maxPromptLength: spec.tokenOptions?.maxPromptLength,
    beta: dpo.beta,
    learningRate: dpo.optimizer.lr,
    lrSchedulerType: dpo.optimizer.schedule,
    warmupSteps: dpo.optimizer.warmupSteps,
    perDeviceTrainBatchSize: dpo.loop.batchSize,
    loggingSteps: dpo.loop.loggingSteps,
  };
  const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const out: Flags = { ...f, model: paths.sft };
  for (const [k, v] of Object.entries(world)) if (!given.has(kebab(k))) out[k] = v as never;
  return out;
}

await runMain(async () => {
  if (flags.usePeft) {
    throw new UsageError(
      "--use-peft: online DPO samples from the policy at every step, and the sampler " +
        "(src/eval/sample.ts) decodes the base weights without LoRA adapters, so a LoRA policy " +
        "would sample from the wrong model. Train full weights (drop --use-peft), or use " +
        "`deno task dpo --use-peft` on pairs sampled beforehand",
    );
  }
  let backend: Backend | undefined;
  const open = async () => backend ??= await openBackend(deviceOf(flags), flags);
  const f = flags.model ? flags : await worldDefaults(flags, open);
  if (flags.model && !flags.prompts) throw new UsageError("--prompts is required with --model");
  if (flags.model && !flags.outputDir) {
    throw new UsageError("--output-dir is required with --model");
  }
  checkTrainFlags({ ...f, evalFraction: 0 });
  const model = String(f.model), prompts = String(f.prompts), outputDir = String(f.outputDir);
  if (!await store.exists(`${model}/config.json`)) {
    throw new UsageError(`--model: ${model} is not a model folder (no config.json)`);
  }
  if (!await store.exists(prompts)) throw new UsageError(`--prompts: ${prompts}: no such file`);
  const maxPromptLength = f.maxPromptLength as number | undefined;
  if (
    maxPromptLength !== undefined && !(Number.isInteger(maxPromptLength) && maxPromptLength > 0)
  ) {
    throw new UsageError(`--max-prompt-length: expected an integer >= 1, got ${maxPromptLength}`);
  }
  const reward = await loadReward(f.reward as string | undefined);
  const hooks = stageHooks("online-dpo", [
    "loss",
    "objective/scores",
    "objective/scores_margin",
    "rewards/accuracies",
  ]);
  const result = await runStage(
    "online-dpo",
    outputDir,
    hooks,
    async () =>
      runOnlineDpo(store, await open(), {
        ...lossOptionsOf(f),
        model,
        prompts,
        outputDir,
        reward,
        maxNewTokens: f.maxNewTokens as number,
        temperature: f.temperature as number,
        ties: f.ties as "drop" | "first",
        missingEosPenalty: f.missingEosPenalty as number,
        maxPromptLength,
        optimizer: optimizerOf(f),
        loop: loopOf(f),
        resume: f.resume as boolean,
        force: f.force as boolean,
        overwriteOutputDir: f.overwriteOutputDir as boolean,
        maxMemory: maxMemoryOf(f),
        frozenDtype: f.frozenDtype as "auto" | "f32",
      }, hooks),
  );
  const rows = result.rows.filter((r) => "loss" in r);
  const total = (k: string) => rows.reduce((n, r) => n + (r[k] ?? 0), 0);
  console.error(
    `online-dpo: ${total("pairs")} pairs (${total("tied")} prompts tied: ${
      f.ties === "first" ? "first sample chosen" : "dropped"
    }), ` +
      `${total("sampled_tokens")} sampled tokens, ${total("trained_tokens")} trained tokens; ` +
      `policy and metrics.jsonl in ${result.policy}`,
  );
  if (f.json) console.log(JSON.stringify({ policy: result.policy, final: result.rows.at(-1) }));
  backend?.destroy();
});
