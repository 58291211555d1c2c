/**
 * `deno task kto`: KTO training (TRL's KTOTrainer) on unpaired examples (`prompt`, `completion`,
 * boolean `label`). The reference log-probs of the examples and of their mismatched pairs are
 * cached first (into --ref-cache, or <output-dir>/ref_cache.bin), so training never loads the
 * reference.
 */

import { KTO_LOSS_DEFAULTS } from "../src/backend/mod.ts";
import { parseFlags, runMain, UsageError } from "./_cli.ts";
import {
  checkTrainFlags,
  COMMON_FLAGS,
  DATA_FLAGS,
  deviceOf,
  FROZEN_FLAGS,
  MEMORY_FLAGS,
  PEFT_FLAGS,
  required,
  TRAIN_FLAGS,
  trainStageOf,
} from "./_flags.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import { runKto } from "../src/pipeline/kto.ts";
import type { KtoLossType } from "../src/backend/mod.ts";

const flags = parseFlags(
  "kto",
  "Trains a policy with KTO on unpaired examples (prompt, completion, label).\n" +
    "The reference (--ref-model, default --model) is scored once into a cache first.",
  {
    model: { type: "string", help: "the policy's starting point (HF folder with tokenizer)" },
    data: { type: "string", help: "unpaired dataset: prompt, completion, label" },
    "ref-cache": {
      type: "string",
      help: "KTO reference cache: reused when it fits, built there otherwise",
    },
    "ref-model": { type: "string", help: "reference model (default: --model)" },
    "output-dir": { type: "string", help: "where the policy, checkpoints and metrics go" },
    beta: { type: "number", default: KTO_LOSS_DEFAULTS.beta, help: "KL strength β" },
    "desirable-weight": {
      type: "number",
      default: KTO_LOSS_DEFAULTS.desirableWeight,
      help: "λ_D, weight of desirable losses",
    },
    "undesirable-weight": {
      type: "number",
      default: KTO_LOSS_DEFAULTS.undesirableWeight,
      help: "λ_U, weight of undesirable losses",
    },
    "loss-type": {
      type: "string",
      default: KTO_LOSS_DEFAULTS.lossType,
      choices: ["kto", "apo_zero_unpaired"],
      help: "KTO loss",
    },
    force: { type: "boolean", default: false, help: "redo the cache and the training" },
    ...TRAIN_FLAGS,
    ...PEFT_FLAGS,
    ...MEMORY_FLAGS,
    ...FROZEN_FLAGS,
    "learning-rate": { ...TRAIN_FLAGS["learning-rate"], default: 1e-6 },
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  checkTrainFlags(flags);
  if (!(flags.beta as number > 0)) throw new UsageError(`--beta: must be > 0, got ${flags.beta}`);
  for (const k of ["desirableWeight", "undesirableWeight"]) {
    if (!(flags[k] as number > 0)) {
      throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: must be > 0`);
    }
  }
  const backend = await openBackend(deviceOf(flags), flags);
  const hooks = stageHooks("kto", ["loss", "kl", "rewards/chosen", "rewards/rejected"]);
  const { rows } = await runStage(
    "kto",
    required(flags, "outputDir"),
    hooks,
    () =>
      runKto(store, backend, {
        ...trainStageOf(flags),
        refCache: flags.refCache as string | undefined,
        refModel: flags.refModel as string | undefined,
        lossType: flags.lossType as KtoLossType,
        beta: flags.beta as number,
        desirableWeight: flags.desirableWeight as number,
        undesirableWeight: flags.undesirableWeight as number,
      }, hooks),
  );
  if (flags.json) console.log(JSON.stringify(rows.at(-1)));
});
