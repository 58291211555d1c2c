/**
 * `deno task preferences`: makes the embedded default's preference sets as the DPO paper made its
 * own: the SFT model (SFT of data/base with the default pipeline's options) samples 4 completions
 * per prefix and every pair is labelled by the ground-truth reward, ties dropped. Writes
 * data/preferences.jsonl (training prefixes from data/sft.jsonl) and data/preferences_eval.jsonl
 * (held-out prefixes from data/prompts_eval.jsonl).
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { readPrompts } from "../src/data/prompts.ts";
import { COMMON_FLAGS, deviceOf } from "./_flags.ts";
import { openBackend, runStage, stageHooks, store, timed } from "./_stage.ts";
import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { runSft } from "../src/pipeline/sft.ts";
import { loadModel } from "../src/model/model_folder.ts";
import { loadTokenizer } from "../src/data/mod.ts";
import { makePreferencePairs } from "../src/pipeline/preferences.ts";
import { sentimentReward } from "../src/world/reward.ts";
import { joinPath } from "../src/io/fs.ts";

const flags = parseFlags(
  "preferences",
  "Samples and labels the default world's preference pairs.",
  {
    "train-prompts": { type: "number", default: 640, help: "training prefixes (from sft.jsonl)" },
    "max-pairs": { type: "number", default: 4000, help: "most training pairs" },
    "max-eval-pairs": { type: "number", default: 192, help: "most held-out pairs" },
    samples: { type: "number", default: 4, help: "completions sampled per prefix" },
    "max-new-tokens": { type: "number", default: 12, help: "tokens per completion at most" },
    seed: { type: "number", default: 0, help: "sampling seed (held-out pairs use seed + 1)" },
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  const root = new URL("../", import.meta.url).pathname;
  const spec = defaultPipelineSpec(root, "world", false);
  if (!await store.exists(joinPath(spec.baseModel, "model.safetensors"))) {
    throw new UsageError(`${spec.baseModel} has no model: run \`deno task pretrain\` first`);
  }
  const backend = await openBackend(deviceOf(flags), flags);
  const sftDir = joinPath(spec.runDir, "sft");
  const sftHooks = stageHooks("sft", ["loss"]);
  await runStage("sft", sftDir, sftHooks, () =>
    runSft(store, backend, {
      model: spec.baseModel,
      data: { path: spec.sftData },
      evalData: spec.sftEvalData,
      outputDir: sftDir,
      tokenOptions: spec.tokenOptions,
      optimizer: spec.sft.optimizer,
      loop: spec.sft.loop,
    }, sftHooks), "reused");
  const tokenizer = await loadTokenizer(store, sftDir);
  const { model } = await loadModel(store, sftDir, backend, {
    maxBatch: 1,
    maxSeqLen: 1,
    trainable: false,
  });
  const sets = [
    {
      file: spec.preferenceData,
      prompts: await readPrompts(store, spec.sftData, {
        unique: true,
        limit: flags.trainPrompts as number,
      }),
      maxPairs: flags.maxPairs as number,
      seed: flags.seed as number,
    },
    {
      file: spec.preferenceEvalData!,
      prompts: await readPrompts(store, joinPath(root, "data", "prompts_eval.jsonl"), {
        unique: true,
      }),
      maxPairs: flags.maxEvalPairs as number,
      seed: (flags.seed as number) + 1,
    },
  ];
  for (const set of sets) {
    const pairs = await timed(
      `sampling ${set.prompts.length} prefixes`,
      () =>
        makePreferencePairs(model, tokenizer, set.prompts, sentimentReward, {
          samplesPerPrompt: flags.samples as number,
          maxNewTokens: flags.maxNewTokens as number,
          seed: set.seed,
          maxPairs: set.maxPairs,
        }),
    );
    const text = pairs.map((p) => JSON.stringify(p)).join("\n") + "\n";
    await store.writeFileAtomic(set.file, new TextEncoder().encode(text));
    console.error(`wrote ${set.file}: ${pairs.length} pairs from ${set.prompts.length} prefixes`);
  }
});
