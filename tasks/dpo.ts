/**
 * `deno task dpo`: DPO training of a policy against cached reference log-probs. With no
 * --model/--data it runs the whole default pipeline on the embedded world in data/
 * (SFT -> precompute -> DPO -> evaluation), skipping stages that are up to date.
 */

import { parseFlags, runMain } from "./_cli.ts";
import {
  checkTrainFlags,
  COMMON_FLAGS,
  DATA_FLAGS,
  deviceOf,
  FROZEN_FLAGS,
  LOSS_FLAGS,
  lossOptionsOf,
  MEMORY_FLAGS,
  PEFT_FLAGS,
  required,
  TRAIN_FLAGS,
  trainStageOf,
} from "./_flags.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import { runDpo } from "../src/pipeline/dpo.ts";
import { runDefaultPipeline } from "./_default_pipeline.ts";

const flags = parseFlags(
  "dpo",
  "Trains a policy with DPO against a reference log-prob cache (deno task precompute).\n" +
    "Reference-free losses (simpo, orpo, sft, --reference-free) need no cache or reference.\n" +
    "With no --model and --data, runs the default pipeline on data/ (SFT, precompute, DPO, eval).",
  {
    model: { type: "string", help: "the policy's starting point (HF folder with tokenizer)" },
    data: { type: "string", help: "preference dataset" },
    "ref-cache": { type: "string", help: "reference log-prob cache from deno task precompute" },
    "ref-model": {
      type: "string",
      help: "reference model: must match the cache; without a cache it runs live",
    },
    "output-dir": { type: "string", help: "where the policy, checkpoints and metrics go" },
    "precompute-ref-log-probs": {
      type: "boolean",
      default: true,
      help:
        "without a cache or --ref-model, cache the reference first; --no-precompute-ref-log-probs " +
        "runs it live (with --use-peft: the policy's own base, adapters off, no second copy)",
    },
    ...LOSS_FLAGS,
    "run-name": { type: "string", default: "default", help: "default pipeline: runs/<name>" },
    force: {
      type: "boolean",
      default: false,
      help: "redo the training even when it is up to date (default pipeline: every stage)",
    },
    ...TRAIN_FLAGS,
    ...PEFT_FLAGS,
    ...MEMORY_FLAGS,
    ...FROZEN_FLAGS,
    "learning-rate": { ...TRAIN_FLAGS["learning-rate"], default: 5e-6 },
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  checkTrainFlags(flags);
  const loss = lossOptionsOf(flags);
  if (!flags.model && !flags.data) {
    await runDefaultPipeline(flags);
    return;
  }
  const backend = await openBackend(deviceOf(flags), flags);
  const hooks = stageHooks("dpo", [
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
  ]);
  const { rows, skipped } = await runStage(
    "dpo",
    required(flags, "outputDir"),
    hooks,
    () =>
      runDpo(store, backend, {
        ...trainStageOf(flags),
        refCache: flags.refCache as string | undefined,
        refModel: flags.refModel as string | undefined,
        precomputeRefLogProbs: flags.precomputeRefLogProbs as boolean,
        ...loss,
      }, hooks),
  );
  if (!skipped) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
    console.error(
      "device memory by role: " +
        Object.entries(backend.bytesByRole()).map(([k, v]) => `${k} ${mib(v)}`).join(", "),
    );
    console.error(`metrics and report.html in ${flags.outputDir}`);
  }
  if (flags.json) console.log(JSON.stringify(rows.at(-1)));
});
