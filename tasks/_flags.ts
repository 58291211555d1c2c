/**
 * Flag groups shared by the training tasks (kebab-case forms of TRL's option names, DESIGN.md)
 * and their conversion into the library's option objects.
 */

import { KERNEL_FLAGS } from "./_kernels.ts";
import { type Flags, type FlagSpec, UsageError } from "./_cli.ts";
import type { OptimizerOptions } from "../src/train/optimizer.ts";
import type { LoopOptions, TrainStageOptions } from "../src/pipeline/loop.ts";
import type { SplitSpec, TokenOptions } from "../src/data/prepare.ts";
import type { DeviceChoice } from "../src/pipeline/device.ts";
import { parseBytes } from "../src/train/memory_fit.ts";
import {
  type FDivergenceType,
  PREFERENCE_LOSS_DEFAULTS,
  PREFERENCE_LOSS_TYPES,
  type PreferenceLossOptions,
  type PreferenceLossType,
  resolveLossSpec,
} from "../src/backend/mod.ts";

/** --device and --json. */
export const COMMON_FLAGS: Record<string, FlagSpec> = {
  device: {
    type: "string",
    default: "auto",
    choices: ["webgpu", "cpu", "auto"],
    help: "backend; auto falls back to the CPU with a warning",
  },
  json: { type: "boolean", default: false, help: "print machine-readable results on stdout" },
  ...KERNEL_FLAGS,
};

/** Dataset and token options. */
export const DATA_FLAGS: Record<string, FlagSpec> = {
  "max-length": { type: "number", default: 1024, help: "most tokens of prompt + completion" },
  "max-prompt-length": { type: "number", default: 512, help: "most tokens of a prompt" },
  "truncation-mode": {
    type: "string",
    default: "keep_end",
    choices: ["keep_end", "keep_start"],
    help: "which end of a long prompt is kept",
  },
  "skip-invalid": { type: "boolean", default: false, help: "drop invalid rows (reported)" },
  split: { type: "string", default: "train", help: "named split of a dataset folder" },
};

/** Optimizer, schedule and loop options (HF TrainingArguments). */
export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  optim: {
    type: "string",
    default: "adamw",
    choices: ["adamw", "rmsprop", "sgd"],
    help: "optimizer",
  },
  "learning-rate": { type: "number", default: 5e-5, aliases: ["lr"], help: "peak learning rate" },
  "per-device-train-batch-size": {
    type: "number",
    default: 8,
    aliases: ["batch-size"],
    help: "examples (pairs for DPO) per micro-batch",
  },
  "gradient-accumulation-steps": { type: "number", default: 1, help: "micro-batches per step" },
  "num-train-epochs": { type: "number", default: 1, help: "epochs (when --max-steps is -1)" },
  "max-steps": { type: "number", default: -1, help: "optimizer steps; overrides epochs if > 0" },
  "warmup-steps": { type: "number", default: 0, help: "linear warmup steps" },
  "lr-scheduler-type": {
    type: "string",
    default: "linear",
    choices: ["constant", "linear", "cosine", "constant_with_warmup"],
    help: "learning-rate schedule",
  },
  "max-grad-norm": { type: "number", default: 1, help: "global gradient-norm clip (0 = off)" },
  "weight-decay": { type: "number", default: 0, help: "weight decay" },
  seed: { type: "number", default: 42, help: "seed of the batch order and held-out split" },
  "eval-data": { type: "string", help: "held-out dataset file" },
  "eval-fraction": { type: "number", default: 0, help: "fraction of --data held out for eval" },
  "eval-steps": { type: "number", default: 0, help: "evaluate every N steps (0 = at the end)" },
  "logging-steps": { type: "number", default: 10, help: "log metrics every N steps" },
  "save-steps": { type: "number", default: 0, help: "checkpoint every N steps (0 = off)" },
  resume: {
    type: "boolean",
    default: false,
    help: "continue from the newest checkpoint of this run (same options, data and model)",
  },
  "overwrite-output-dir": {
    type: "boolean",
    default: false,
    help: "clear another run's outputs from --output-dir instead of refusing to start",
  },
  "dataloader-drop-last": {
    type: "boolean",
    default: false,
    help: "drop each epoch's last batch when it is partial (TRL's dataloader_drop_last)",
  },
  "gradient-checkpointing": {
    type: "boolean",
    default: false,
    help: "recompute each layer's activations in the backward: less memory, same result",
  },
};

import { peftOf } from "./_peft_flags.ts";
export { LORA_FLAGS, PEFT_FLAGS, peftOf } from "./_peft_flags.ts";

/** The memory plan's limit (every training task plans its memory before allocating). */
export const MEMORY_FLAGS: Record<string, FlagSpec> = {
  "max-memory": {
    type: "string",
    help: "refuse (exit 2) a run whose planned device memory exceeds this, e.g. 8GiB",
  },
};

/** Frozen weights in the checkpoint's precision (sft, dpo, kto, precompute, online-dpo, eval). */
export const FROZEN_FLAGS: Record<string, FlagSpec> = {
  "frozen-dtype": {
    type: "string",
    default: "auto",
    choices: ["auto", "f32"],
    help: "frozen weights (LoRA base, reference, evaluated models) in the checkpoint's bf16/f16 " +
      "(auto) or widened to f32",
  },
};

/** `--max-memory` in bytes, or undefined. */
export function maxMemoryOf(f: Flags): number | undefined {
  if (f.maxMemory === undefined) return undefined;
  try {
    return parseBytes(String(f.maxMemory));
  } catch (error) {
    throw new UsageError(`--max-memory: ${(error as Error).message}`);
  }
}

const num = (f: Flags, k: string) => f[k] as number;

/** Checks the numeric ranges of the training flags. */
export function checkTrainFlags(f: Flags): void {
  const positive = ["learningRate", "perDeviceTrainBatchSize", "gradientAccumulationSteps"];
  for (const k of positive) {
    if (!(num(f, k) > 0)) throw new UsageError(`--${kebab(k)}: must be > 0, got ${f[k]}`);
  }
  const ints = [
    "perDeviceTrainBatchSize",
    "gradientAccumulationSteps",
    "warmupSteps",
    "loggingSteps",
  ];
  for (const k of ints) {
    if (!Number.isInteger(num(f, k))) {
      throw new UsageError(`--${kebab(k)}: must be an integer, got ${f[k]}`);
    }
  }
  // Steps and counts are integers: --max-steps=2.5 or --save-steps=-1 mean nothing.
  const counts = ["saveSteps", "evalSteps", "seed"];
  for (const k of counts) {
    if (f[k] !== undefined && !(Number.isInteger(num(f, k)) && num(f, k) >= 0)) {
      throw new UsageError(`--${kebab(k)}: must be an integer >= 0, got ${f[k]}`);
    }
  }
  const maxSteps = num(f, "maxSteps");
  if (!(Number.isInteger(maxSteps) && (maxSteps === -1 || maxSteps >= 1))) {
    throw new UsageError(
      `--max-steps: must be -1 (use --num-train-epochs) or an integer >= 1, got ${maxSteps}`,
    );
  }
  if (!(num(f, "numTrainEpochs") > 0)) {
    throw new UsageError(`--num-train-epochs: must be > 0, got ${f.numTrainEpochs}`);
  }
  if (num(f, "warmupSteps") < 0) {
    throw new UsageError(`--warmup-steps: must be >= 0, got ${f.warmupSteps}`);
  }
  if (!(num(f, "evalFraction") >= 0 && num(f, "evalFraction") < 1)) {
    throw new UsageError(`--eval-fraction: must be in [0, 1), got ${f.evalFraction}`);
  }
  if (num(f, "loggingSteps") < 1) throw new UsageError("--logging-steps: must be >= 1");
  if (num(f, "maxGradNorm") < 0) throw new UsageError("--max-grad-norm: must be >= 0");
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The optimizer options of the flags. */
export function optimizerOf(f: Flags): OptimizerOptions {
  return {
    kind: f.optim as OptimizerOptions["kind"],
    lr: num(f, "learningRate"),
    weightDecay: num(f, "weightDecay"),
    maxGradNorm: num(f, "maxGradNorm"),
    schedule: f.lrSchedulerType as OptimizerOptions["schedule"],
    warmupSteps: num(f, "warmupSteps"),
  };
}

/**
 * The options every training stage (sft, dpo, kto) reads from the same flags: model, data and its
 * held-out split, output folder, token options, optimizer, loop, resume, overwrite and force.
 */
export function trainStageOf(f: Flags): TrainStageOptions {
  return {
    model: required(f, "model"),
    data: splitOf(f, required(f, "data")),
    evalData: f.evalData as string | undefined,
    evalFraction: f.evalFraction as number,
    outputDir: required(f, "outputDir"),
    tokenOptions: tokenOptionsOf(f),
    optimizer: optimizerOf(f),
    loop: loopOf(f),
    resume: f.resume as boolean,
    overwriteOutputDir: f.overwriteOutputDir as boolean,
    force: f.force as boolean,
    peft: f.usePeft === undefined ? undefined : peftOf(f),
    maxMemory: maxMemoryOf(f),
    frozenDtype: f.frozenDtype as "auto" | "f32" | undefined,
  };
}

/** The loop options of the flags. */
export function loopOf(f: Flags): LoopOptions {
  return {
    batchSize: num(f, "perDeviceTrainBatchSize"),
    gradientAccumulationSteps: num(f, "gradientAccumulationSteps"),
    maxSteps: num(f, "maxSteps"),
    numTrainEpochs: num(f, "numTrainEpochs"),
    loggingSteps: num(f, "loggingSteps"),
    evalSteps: num(f, "evalSteps"),
    saveSteps: num(f, "saveSteps"),
    seed: num(f, "seed"),
    dropLast: f.dataloaderDropLast as boolean,
    gradientCheckpointing: f.gradientCheckpointing as boolean,
  };
}

/** The token options of the flags. */
export function tokenOptionsOf(f: Flags): TokenOptions {
  return {
    maxLength: num(f, "maxLength"),
    maxPromptLength: num(f, "maxPromptLength"),
    truncationMode: f.truncationMode as TokenOptions["truncationMode"],
  };
}

/** The dataset split of `--data` and the shared dataset flags. */
export function splitOf(f: Flags, path: string): SplitSpec {
  return {
    path,
    split: f.split as string,
    seed: num(f, "seed"),
    skipInvalid: f.skipInvalid as boolean,
  };
}

/** `--device` as a choice. */
export function deviceOf(f: Flags): DeviceChoice {
  return f.device as DeviceChoice;
}

/** A required string flag. */
export function required(f: Flags, key: string): string {
  const v = f[key];
  if (typeof v !== "string" || v === "") {
    throw new UsageError(`--${kebab(key)} is required; see --help`);
  }
  return v;
}

const D = PREFERENCE_LOSS_DEFAULTS;

/** The preference-loss flags of `deno task dpo` (TRL's DPOConfig names; docs/losses.md). */
export const LOSS_FLAGS: Record<string, FlagSpec> = {
  beta: { type: "number", default: D.beta, help: "KL strength β (IPO's τ; ORPO's λ)" },
  "loss-type": {
    type: "string",
    default: D.lossType,
    help: `preference loss, or a comma list summed with --loss-weights: ${
      PREFERENCE_LOSS_TYPES.join("|")
    }`,
  },
  "loss-weights": { type: "string", help: "comma list, one weight per --loss-type (default 1s)" },
  "label-smoothing": {
    type: "number",
    default: D.labelSmoothing,
    help: "ε of cDPO, robust, exo_pair, simpo",
  },
  "f-divergence-type": {
    type: "string",
    default: D.fDivergenceType,
    choices: ["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"],
    help: "divergence of the implicit reward",
  },
  "f-alpha-divergence-coef": {
    type: "number",
    default: D.fAlphaDivergenceCoef,
    help: "α of alpha_divergence",
  },
  "reference-free": {
    type: "boolean",
    default: D.referenceFree,
    help: "reference log-probs are 0: no cache, no reference model",
  },
  "rdpo-alpha": {
    type: "number",
    default: D.rdpoAlpha,
    help: "R-DPO length penalty α per token (0 = off)",
  },
  "simpo-gamma": { type: "number", default: D.simpoGamma, help: "SimPO target margin γ" },
  "discopop-tau": { type: "number", default: D.discopopTau, help: "DiscoPOP temperature τ" },
  "ipo-summed": {
    type: "boolean",
    default: !D.ipoLengthNormalized,
    help: "IPO on summed log-probs (the paper) instead of per-token averages (TRL)",
  },
};

/** The loss options of {@link LOSS_FLAGS}; errors name the flag. */
export function lossOptionsOf(f: Flags): PreferenceLossOptions {
  const types = String(f.lossType).split(",").map((t) => t.trim()).filter(Boolean);
  for (const t of types) {
    if (!(PREFERENCE_LOSS_TYPES as readonly string[]).includes(t)) {
      throw new UsageError(
        `--loss-type: unknown "${t}"; expected one of ${PREFERENCE_LOSS_TYPES.join(", ")}`,
      );
    }
  }
  let weights: number[] | undefined;
  if (f.lossWeights !== undefined) {
    weights = String(f.lossWeights).split(",").map(Number);
    if (weights.length !== types.length || weights.some((w) => !Number.isFinite(w))) {
      throw new UsageError(
        `--loss-weights: expected ${types.length} numbers for --loss-type ${types.join(",")}, ` +
          `got "${f.lossWeights}"`,
      );
    }
  }
  const options: PreferenceLossOptions = {
    lossType: types as PreferenceLossType[],
    lossWeights: weights,
    beta: num(f, "beta"),
    labelSmoothing: num(f, "labelSmoothing"),
    fDivergenceType: f.fDivergenceType as FDivergenceType,
    fAlphaDivergenceCoef: num(f, "fAlphaDivergenceCoef"),
    referenceFree: Boolean(f.referenceFree),
    rdpoAlpha: num(f, "rdpoAlpha"),
    simpoGamma: num(f, "simpoGamma"),
    discopopTau: num(f, "discopopTau"),
    ipoLengthNormalized: !f.ipoSummed,
  };
  // The values are checked where the loss is resolved, once; here its messages become usage errors.
  try {
    resolveLossSpec(options);
  } catch (error) {
    throw new UsageError(`loss options: ${(error as Error).message}`);
  }
  return options;
}
