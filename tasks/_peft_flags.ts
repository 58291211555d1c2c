/** The LoRA / PEFT flag groups of the training tasks and their conversion (re-exported by _flags.ts). */

import type { Flags, FlagSpec } from "./_cli.ts";
import { UsageError } from "./_cli.ts";
import type { PeftOptions } from "../src/pipeline/peft.ts";
import { checkLoraOptions, LORA_DEFAULTS, resolveTargetModules } from "../src/model/lora.ts";

/** LoRA (TRL's ModelConfig / PEFT's LoraConfig names; defaults in src/model/lora.ts). */
export const LORA_FLAGS: Record<string, FlagSpec> = {
  "use-peft": {
    type: "boolean",
    default: false,
    help: "train LoRA adapters on the frozen base instead of every weight",
  },
  "lora-r": { type: "number", default: LORA_DEFAULTS.r, help: "LoRA rank r" },
  "lora-alpha": {
    type: "number",
    default: LORA_DEFAULTS.alpha,
    help: "LoRA alpha (the update is scaled by alpha / r)",
  },
  "lora-dropout": {
    type: "number",
    default: LORA_DEFAULTS.dropout,
    help: "dropout on the adapters' input (seeded by --seed)",
  },
  "lora-target-modules": {
    type: "string",
    default: LORA_DEFAULTS.targetModules.join(","),
    help: "comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or all-linear",
  },
};

/** {@link LORA_FLAGS} plus starting from and merging an adapter folder. */
export const PEFT_FLAGS: Record<string, FlagSpec> = {
  ...LORA_FLAGS,
  adapter: {
    type: "string",
    help:
      "start from this PEFT adapter folder (its r, alpha and target modules); implies --use-peft",
  },
  "merge-adapter": {
    type: "boolean",
    default: false,
    help: "also write the merged full model (config.json + model.safetensors) beside the adapter",
  },
};

/** The LoRA options of {@link PEFT_FLAGS}, or undefined without --use-peft / --adapter. */
export function peftOf(f: Flags): PeftOptions | undefined {
  if (!f.usePeft && !f.adapter) {
    const given = ["mergeAdapter"].filter((k) => f[k]);
    if (given.length) throw new UsageError("--merge-adapter needs --use-peft or --adapter");
    return undefined;
  }
  try {
    const lora = {
      r: f.loraR as number,
      alpha: f.loraAlpha as number,
      dropout: f.loraDropout as number,
      targetModules: resolveTargetModules(String(f.loraTargetModules)),
    };
    checkLoraOptions(lora);
    return {
      lora,
      adapter: f.adapter as string | undefined,
      mergeAdapter: f.mergeAdapter as boolean,
    };
  } catch (error) {
    throw new UsageError(`LoRA options (--lora-*): ${(error as Error).message}`);
  }
}
