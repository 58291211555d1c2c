/**
 * PEFT adapter folders, as `PeftModel.save_pretrained` writes and `PeftModel.from_pretrained`
 * reads them:
 *
 *     adapter_config.json         peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, ...
 *     adapter_model.safetensors   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight
 *                                 (r, in), ...lora_B.weight (out, r), F32
 *
 * and the merge of an adapter into its base (`merge_and_unload`: W += scaling · B A).
 *
 * @module
 */

import { FileNotFoundError, type FileStore, joinPath } from "../io/fs.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { sha256Hex } from "../io/hash.ts";
import type { ModelConfig } from "./config.ts";
import {
  checkLoraOptions,
  loraLayout,
  type LoraOptions,
  loraTensorName,
  moduleName,
  resolveTargetModules,
} from "./lora.ts";
import type { HostWeights } from "./model_folder.ts";
import { NonFiniteError } from "./params.ts";

/** PEFT's file names. */
export const ADAPTER_CONFIG_FILE = "adapter_config.json";
/** The adapter weights. */
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

/** An adapter folder that cannot be used; the message names the file and what to do. */
export class PeftAdapterError extends Error {
  /** An error whose message names the file and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "PeftAdapterError";
  }
}

/** adapter_config.json of `options` on the base `baseModel`, with PEFT's LoraConfig fields. */
export function adapterConfig(options: LoraOptions, baseModel: string): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: options.alpha,
    lora_dropout: options.dropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: options.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...options.targetModules],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: false,
  };
}

/** Writes an adapter folder: the weights first, then adapter_config.json, each atomically. */
export async function saveAdapter(
  fs: FileStore,
  dir: string,
  options: LoraOptions,
  weights: HostWeights,
  baseModel: string,
): Promise<void> {
  for (const [name, t] of weights) {
    const bad = Array.prototype.findIndex.call(t.data, (x: number) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new NonFiniteError(
        `not saving ${dir}: adapter tensor ${name} holds ${t.data[bad]} at element ${bad} ` +
          "(training diverged; lower --learning-rate or set --max-grad-norm)",
      );
    }
  }
  await fs.mkdirp(dir);
  const tensors = new Map(
    [...weights].map(([name, t]) => [name, { shape: t.shape, data: Float32Array.from(t.data) }]),
  );
  await fs.writeFileAtomic(
    joinPath(dir, ADAPTER_WEIGHTS_FILE),
    writeSafetensors(tensors, { metadata: { format: "pt" } }),
  );
  const text = JSON.stringify(adapterConfig(options, baseModel), null, 2) + "\n";
  await fs.writeFileAtomic(joinPath(dir, ADAPTER_CONFIG_FILE), new TextEncoder().encode(text));
}

/** A PEFT adapter read from its folder. */
export interface LoadedAdapter {
  /** r, alpha, dropout and target modules of its adapter_config.json. */
  options: LoraOptions;
  /** Its A and B tensors under PEFT's names. */
  weights: HostWeights;
  /** SHA-256 of its config fields and weights (the reference's identity). */
  fingerprint: string;
  /** adapter_config.json's base_model_name_or_path. */
  baseModel: string;
}

/** What this library cannot apply, by adapter_config.json field. */
function unsupported(raw: Record<string, unknown>): string | undefined {
  if (raw.peft_type !== "LORA") return `peft_type is ${JSON.stringify(raw.peft_type)}, not LORA`;
  if (raw.use_dora) return "use_dora is true (DoRA is not implemented)";
  if (raw.use_rslora) return "use_rslora is true (rank-stabilised scaling is not implemented)";
  if ((raw.bias ?? "none") !== "none") return `bias is ${JSON.stringify(raw.bias)}, not "none"`;
  if (raw.fan_in_fan_out) return "fan_in_fan_out is true (Conv1D layers, not Llama's)";
  for (const key of ["rank_pattern", "alpha_pattern"]) {
    const v = raw[key];
    if (v && typeof v === "object" && Object.keys(v).length > 0) return `${key} is not empty`;
  }
  for (const key of ["modules_to_save", "layers_to_transform", "layer_replication"]) {
    if (raw[key] !== null && raw[key] !== undefined) return `${key} is set`;
  }
  return undefined;
}

/**
 * Reads an adapter folder for a base of `config`.
 * @throws PeftAdapterError for a missing file, a config this library cannot apply, a missing or
 *   misshapen tensor (naming the file, the field or the tensor, and what to do).
 */
export async function readAdapter(
  fs: FileStore,
  dir: string,
  config: ModelConfig,
  dropout?: number,
): Promise<LoadedAdapter> {
  const configPath = joinPath(dir, ADAPTER_CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await fs.readText(configPath));
  } catch (error) {
    if (error instanceof FileNotFoundError) {
      throw new PeftAdapterError(
        `${configPath} not found: --adapter takes a PEFT adapter folder (adapter_config.json + ` +
          `${ADAPTER_WEIGHTS_FILE}, as save_pretrained writes it)`,
      );
    }
    throw new PeftAdapterError(`${configPath} is not valid JSON (${(error as Error).message})`);
  }
  const why = unsupported(raw);
  if (why) {
    throw new PeftAdapterError(`${configPath}: ${why}; only plain LoRA adapters are supported`);
  }
  let options: LoraOptions;
  try {
    const target = raw.target_modules;
    options = {
      r: Number(raw.r),
      alpha: Number(raw.lora_alpha),
      dropout: dropout ?? Number(raw.lora_dropout ?? 0),
      targetModules: resolveTargetModules(
        Array.isArray(target) ? target.map(String) : String(target ?? ""),
      ),
    };
    checkLoraOptions(options);
  } catch (error) {
    throw new PeftAdapterError(`${configPath}: ${(error as Error).message}`);
  }
  const file = joinPath(dir, ADAPTER_WEIGHTS_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    if (error instanceof FileNotFoundError) {
      throw new PeftAdapterError(`${file} not found: the adapter folder needs its weights`);
    }
    throw error;
  }
  const { tensors } = readSafetensors(bytes, { file });
  const weights: HostWeights = new Map();
  for (const slot of loraLayout(config, options).slots) {
    const t = tensors.get(slot.name);
    if (!t) {
      throw new PeftAdapterError(
        `${file}: missing tensor ${slot.name}; the adapter does not match adapter_config.json ` +
          "or this base model",
      );
    }
    if (t.shape.join(",") !== slot.shape.join(",")) {
      throw new PeftAdapterError(
        `${file}: ${slot.name} has shape [${t.shape}], r = ${options.r} on this base needs ` +
          `[${slot.shape}]; was the adapter trained on another base model?`,
      );
    }
    weights.set(slot.name, t);
  }
  const fingerprint = await sha256Hex(
    `${options.r}:${options.alpha}:${options.targetModules.join(",")}:${await sha256Hex(bytes)}`,
  );
  return { options, weights, fingerprint, baseModel: String(raw.base_model_name_or_path ?? "") };
}

/**
 * The base weights with the adapter merged in (PEFT's `merge_and_unload`): for every target
 * module W (out,in) += (alpha/r) · B (out,r) A (r,in), summed in float64 and rounded once.
 */
export function mergeAdapter(
  config: ModelConfig,
  base: HostWeights,
  options: LoraOptions,
  adapter: HostWeights,
): HostWeights {
  const merged: HostWeights = new Map(base);
  const { r } = options;
  const scaling = options.alpha / r;
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of options.targetModules) {
      const name = `${moduleName(l, m)}.weight`;
      const W = base.get(name)!;
      const A = adapter.get(loraTensorName(l, m, "A"))!.data;
      const B = adapter.get(loraTensorName(l, m, "B"))!.data;
      const [out, inF] = W.shape;
      const data = new Float32Array(out * inF);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inF; i++) {
          let delta = 0;
          for (let k = 0; k < r; k++) delta += B[o * r + k] * A[k * inF + i];
          data[o * inF + i] = W.data[o * inF + i] + scaling * delta;
        }
      }
      merged.set(name, { shape: W.shape, data });
    }
  }
  return merged;
}
