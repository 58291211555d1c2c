/**
 * `deno task plan`: the device memory a run would hold, by role, before anything is allocated,
 * against the adapter's limits and `--max-memory`. Takes the training tasks' model, data, batch,
 * LoRA and checkpointing flags, or `--shape NAME` for a built-in model shape. Exits 0 whenever it
 * prints a plan, fitting or not; `--json` prints one object on stdout.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import {
  DATA_FLAGS,
  FROZEN_FLAGS,
  LORA_FLAGS,
  maxMemoryOf,
  MEMORY_FLAGS,
  peftOf,
  splitOf,
  tokenOptionsOf,
  TRAIN_FLAGS,
} from "./_flags.ts";
import { configFromHf, type ModelConfig } from "../src/model/config.ts";
import { MODEL_SHAPES, shapeConfig } from "../src/train/model_shapes.ts";
import { type PlanInput, planMemory } from "../src/train/memory_plan.ts";
import type { LoraOptions } from "../src/model/lora.ts";
import type { WeightDtype } from "../src/train/memory_plan.ts";
import { checkLimits, fitSuggestions, formatBytes } from "../src/train/memory_fit.ts";
import { describePlan, granularityOf, limitsOf } from "../src/pipeline/memory.ts";
import { frozenDtypeOfFolder, longestOfData } from "../src/pipeline/plan_data.ts";
import type { FrozenDtypeChoice } from "../src/model/model_folder.ts";
import { createBackend, type DeviceChoice } from "../src/pipeline/device.ts";
import { store } from "./_stage.ts";
import { joinPath } from "../src/io/fs.ts";

const STAGES = ["sft", "dpo", "kto", "precompute"] as const;
type Stage = typeof STAGES[number];

const flags = parseFlags(
  "plan",
  "Plans a run's device memory by role (nothing is allocated) and says whether it fits.",
  {
    stage: { type: "string", default: "dpo", choices: STAGES, help: "which task's run" },
    model: { type: "string", help: "model folder (its config.json is read)" },
    shape: {
      type: "string",
      help: `a built-in model shape instead of --model: ${Object.keys(MODEL_SHAPES).join(", ")}`,
    },
    dtype: {
      type: "string",
      choices: ["bf16", "f16", "f32"],
      help: "precision of the frozen weights (default: bf16 for --shape, else what " +
        "--frozen-dtype makes of the checkpoint's stored dtype)",
    },
    ...FROZEN_FLAGS,
    data: { type: "string", help: "dataset: its longest tokenized example sets the length" },
    "per-device-train-batch-size": {
      type: "number",
      default: 8,
      aliases: ["batch-size"],
      help: "examples (pairs for dpo and precompute) per micro-batch",
    },
    "ref-model": { type: "string", help: "dpo: a live reference model (with no --ref-cache)" },
    "ref-cache": { type: "string", help: "dpo: the reference cache (no reference model held)" },
    ...LORA_FLAGS,
    "gradient-checkpointing": TRAIN_FLAGS["gradient-checkpointing"],
    device: {
      type: "string",
      default: "auto",
      choices: ["webgpu", "cpu", "auto"],
      help: "whose limits and allocation granularity the plan uses",
    },
    ...MEMORY_FLAGS,
    ...DATA_FLAGS,
    json: { type: "boolean", default: false, help: "print one JSON object on stdout" },
  },
);

async function modelOf(): Promise<{ name: string; config: ModelConfig; dtype: WeightDtype }> {
  if (flags.shape && flags.model) throw new UsageError("give --shape or --model, not both");
  if (flags.shape) {
    try {
      const config = shapeConfig(String(flags.shape));
      const dtype = flags.dtype ?? (frozenChoice() === "f32" ? "f32" : "bf16");
      return { name: String(flags.shape), config, dtype: dtype as WeightDtype };
    } catch (error) {
      throw new UsageError(`--shape: ${(error as Error).message}`);
    }
  }
  if (!flags.model) throw new UsageError("--model DIR or --shape NAME is required; see --help");
  const path = joinPath(String(flags.model), "config.json");
  const config = configFromHf(JSON.parse(new TextDecoder().decode(await store.readFile(path))));
  // The stage's rule: the safetensors headers' dtype under --frozen-dtype auto, f32 under f32.
  const held = await frozenDtypeOfFolder(store, String(flags.model), frozenChoice());
  return { name: String(flags.model), config, dtype: (flags.dtype ?? held) as WeightDtype };
}

const frozenChoice = () => flags.frozenDtype as FrozenDtypeChoice;

await runMain(async () => {
  const stage = flags.stage as Stage;
  const batch = flags.perDeviceTrainBatchSize as number;
  if (!(Number.isInteger(batch) && batch > 0)) {
    throw new UsageError(`--per-device-train-batch-size: must be a positive integer, got ${batch}`);
  }
  const { name, config, dtype } = await modelOf();
  const rowsPerExample = stage === "dpo" || stage === "precompute" ? 2 : 1;
  let seqLen = flags.maxLength as number;
  if (flags.data) {
    if (!flags.model) throw new UsageError("--data needs --model (its tokenizer)");
    seqLen = await longestOfData(
      store,
      stage,
      String(flags.model),
      splitOf(flags, flags.data as string),
      tokenOptionsOf(flags),
    );
  }
  // peftOf resolved every field (and refused bad ones) from the --lora-* flags.
  const lora = peftOf(flags)?.lora as LoraOptions | undefined;
  const liveReference = stage === "dpo" && Boolean(flags.refModel) && !flags.refCache;
  const input: PlanInput = {
    config,
    rows: rowsPerExample * batch,
    seqLen,
    train: stage !== "precompute",
    liveReference,
    separateReference: liveReference,
    frozenDtype: dtype,
    // A live --ref-model is held in its own checkpoint's precision, not the policy's.
    referenceDtype: liveReference
      ? await frozenDtypeOfFolder(store, String(flags.refModel), frozenChoice())
      : undefined,
    lora,
    gradientCheckpointing: flags.gradientCheckpointing as boolean,
  };
  const backend = await createBackend(flags.device as DeviceChoice, { warn: () => {} });
  const granularity = granularityOf(backend);
  const limits = limitsOf(backend, maxMemoryOf(flags));
  const adapter = backend.adapterName;
  backend.destroy();
  const plan = planMemory(input, granularity);
  const checks = checkLimits(plan, limits);
  const fits = checks.every((c) => c.fits);
  const suggestions = fits ? [] : fitSuggestions(input, granularity, limits, {
    rowsPerExample,
    usePeft: true,
    gradientCheckpointing: true,
  });
  const ref = input.referenceDtype ? `, live reference ${input.referenceDtype}` : "";
  const what =
    `${stage} of ${name} (frozen weights ${dtype}${ref}${lora ? `, LoRA r=${lora.r}` : ""}` +
    `${input.gradientCheckpointing ? ", gradient checkpointing" : ""}), ${batch} ` +
    `${rowsPerExample === 2 ? "pairs" : "examples"} x ${seqLen} tokens on ${adapter}`;
  console.error(`plan: ${what}`);
  for (const line of describePlan(plan, limits)) console.error(line);
  console.error(fits ? "fits" : "does not fit");
  for (const s of suggestions) {
    console.error(`  would fit with ${s.flags} (${formatBytes(s.total)})`);
  }
  if (flags.json) {
    console.log(JSON.stringify({
      model: name,
      stage,
      adapter,
      frozen_dtype: dtype,
      reference_dtype: input.referenceDtype ?? null,
      rows: input.rows,
      seq_len: seqLen,
      lora: lora ?? null,
      gradient_checkpointing: input.gradientCheckpointing,
      bytes: plan.bytes,
      weights: plan.weights,
      total: plan.total,
      total_without_activations: plan.totalWithoutActivations,
      largest: { name: plan.largest.name, bytes: plan.largest.bytes },
      limits: checks,
      fits,
      suggestions,
    }));
  }
});
