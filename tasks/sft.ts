/** `deno task sft`: supervised fine-tuning with the prompt masked out of the loss. */

import { parseFlags, runMain } from "./_cli.ts";
import {
  checkTrainFlags,
  COMMON_FLAGS,
  DATA_FLAGS,
  deviceOf,
  FROZEN_FLAGS,
  MEMORY_FLAGS,
  PEFT_FLAGS,
  required,
  tokenOptionsOf,
  TRAIN_FLAGS,
  trainStageOf,
} from "./_flags.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import { runSft } from "../src/pipeline/sft.ts";

const flags = parseFlags(
  "sft",
  "Supervised fine-tuning on demonstrations (text, prompt/completion or messages).",
  {
    model: { type: "string", help: "base model folder (HF layout with tokenizer files)" },
    data: { type: "string", help: "SFT dataset" },
    "output-dir": { type: "string", help: "where the model, checkpoints and metrics go" },
    "completion-only-loss": {
      type: "boolean",
      default: true,
      help: "mask the prompt out of the loss (--no-completion-only-loss: train on all tokens)",
    },
    force: {
      type: "boolean",
      default: false,
      help: "redo the training even when it is up to date",
    },
    ...TRAIN_FLAGS,
    ...PEFT_FLAGS,
    ...MEMORY_FLAGS,
    ...FROZEN_FLAGS,
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  checkTrainFlags(flags);
  const backend = await openBackend(deviceOf(flags), flags);
  const hooks = stageHooks("sft", ["loss", "grad_norm"]);
  const { rows } = await runStage(
    "sft",
    required(flags, "outputDir"),
    hooks,
    () =>
      runSft(store, backend, {
        ...trainStageOf(flags),
        tokenOptions: {
          ...tokenOptionsOf(flags),
          completionOnlyLoss: flags.completionOnlyLoss as boolean,
        },
      }, hooks),
  );
  if (flags.json) console.log(JSON.stringify(rows.at(-1)));
});
