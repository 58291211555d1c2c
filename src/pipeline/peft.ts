/**
 * LoRA in the stages (TRL's `peft_config`): the adapter a run starts from — new (PEFT's init,
 * seeded) or an existing PEFT folder (`--adapter`, whose adapter_config.json decides r, alpha and
 * the target modules) — the policy model built on the frozen base with it, and what the
 * reference is: the base with the adapters off for new adapters (B = 0, so the base is exactly
 * the policy at the start), the base plus the starting adapter, frozen, otherwise.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { sha256Hex } from "../io/hash.ts";
import type { ModelConfig } from "../model/config.ts";
import { LlamaModel, type LlamaModelOptions, type SequenceScorer } from "../model/llama.ts";
import {
  checkLoraOptions,
  initLoraWeights,
  LORA_DEFAULTS,
  loraLayout,
  type LoraOptions,
} from "../model/lora.ts";
import { ADAPTER_WEIGHTS_FILE, mergeAdapter, readAdapter, saveAdapter } from "../model/lora_io.ts";
import {
  copyTokenizerFiles,
  type HostWeights,
  readModelFolder,
  saveModel,
  saveWeights,
} from "../model/model_folder.ts";
import { joinPath } from "../io/fs.ts";
import { WEIGHTS_FILE } from "../io/checkpoint.ts";

/** `--use-peft` and its options (PEFT's / TRL's names). */
export interface PeftOptions {
  /** New adapters' options; with `adapter`, only `dropout` is taken from here. @default LORA_DEFAULTS */
  lora?: Partial<LoraOptions>;
  /** A PEFT adapter folder to start from (continue training, or DPO after a LoRA SFT). */
  adapter?: string;
  /** Write the merged full model (config.json + model.safetensors) beside the adapter. @default false */
  mergeAdapter?: boolean;
}

/** The adapter a run starts from. */
export interface StartingAdapter {
  /** The resolved LoRA options. */
  options: LoraOptions;
  /** A and B, by PEFT name. */
  weights: HostWeights;
  /** Fingerprint of an existing adapter (absent for new ones: they add exactly zero). */
  fingerprint?: string;
  /** The folder it came from (absent for new ones). */
  source?: string;
}

/** The starting adapter of `peft` on a base of `config`; new adapters are seeded by `seed`. */
export async function startingAdapter(
  store: FileStore,
  config: ModelConfig,
  peft: PeftOptions,
  seed: number,
  log?: (message: string) => void,
): Promise<StartingAdapter> {
  if (peft.adapter) {
    const loaded = await readAdapter(store, peft.adapter, config, peft.lora?.dropout);
    const o = loaded.options;
    log?.(
      `adapter ${peft.adapter}: r ${o.r}, lora_alpha ${o.alpha}, target modules ` +
        `${o.targetModules.join(",")} (from its adapter_config.json)`,
    );
    return { ...loaded, source: peft.adapter };
  }
  const options: LoraOptions = { ...LORA_DEFAULTS, ...peft.lora };
  checkLoraOptions(options);
  return { options, weights: initLoraWeights(loraLayout(config, options), seed) };
}

/**
 * The policy: the frozen base with `adapter` on top, for training. With an existing adapter its
 * frozen copy is kept as the reference adapter.
 */
export function loraPolicy(
  backend: Backend,
  config: ModelConfig,
  base: HostWeights,
  adapter: StartingAdapter,
  options: LlamaModelOptions,
  source: string,
): LlamaModel {
  const model = new LlamaModel(backend, config, { ...options, lora: adapter.options });
  model.params.writeAll(base, { source });
  model.lora!.params.writeAll(adapter.weights, { source: adapter.source ?? "new adapter" });
  if (adapter.fingerprint) model.lora!.setReference(adapter.weights);
  return model;
}

/** The live reference of a LoRA policy: its own base, with the starting adapter or none. */
export function loraReference(model: LlamaModel): SequenceScorer {
  return model.withAdapters(model.lora?.reference ? "reference" : "none");
}

/**
 * The identity of a reference that is a base plus an adapter (the base's fingerprint when there
 * is none: new adapters add exactly zero).
 */
export async function referenceFingerprint(
  baseFingerprint: string,
  adapterFingerprint?: string,
): Promise<string> {
  if (!adapterFingerprint) return baseFingerprint;
  return await sha256Hex(`${baseFingerprint}+lora:${adapterFingerprint}`);
}

/** What a LoRA run saves besides the adapter: the base's name and whether to merge. */
export interface AdapterSave {
  /** base_model_name_or_path of adapter_config.json. */
  baseModel: string;
  /** Also write the merged full model. */
  merge: boolean;
}

/** The files a training stage lists as its outputs (hashed in its manifest). */
export function trainedOutputs(outputDir: string, peft?: PeftOptions): string[] {
  if (!peft) return [joinPath(outputDir, WEIGHTS_FILE)];
  return [
    joinPath(outputDir, ADAPTER_WEIGHTS_FILE),
    ...(peft.mergeAdapter ? [joinPath(outputDir, WEIGHTS_FILE)] : []),
  ];
}

/**
 * Saves a trained model to `dir`: the full model in HF layout, or for LoRA the PEFT adapter
 * folder (plus the merged model with `save.merge`), with the tokenizer files copied along.
 */
export async function saveTrained(
  store: FileStore,
  dir: string,
  model: LlamaModel,
  o: { tokenizerFrom?: string; rawConfig?: Record<string, unknown>; adapter?: AdapterSave },
): Promise<void> {
  const lora = model.lora;
  if (!lora) return await saveModel(store, dir, model, o);
  const weights = await lora.params.readAll();
  await saveAdapter(store, dir, lora.options, weights, o.adapter?.baseModel ?? "");
  if (o.adapter?.merge) {
    const merged = mergeAdapter(model.config, await model.params.readAll(), lora.options, weights);
    await saveWeights(store, dir, model.config, merged, o);
  } else if (o.tokenizerFrom && o.tokenizerFrom !== dir) {
    await copyTokenizerFiles(store, o.tokenizerFrom, dir);
  }
}

/** Restores what {@link saveTrained} wrote to a checkpoint into `model`. */
export async function restoreTrained(
  store: FileStore,
  dir: string,
  model: LlamaModel,
): Promise<void> {
  if (model.lora) {
    const { weights } = await readAdapter(store, dir, model.config);
    model.lora.params.writeAll(weights, { source: dir });
    return;
  }
  const { weights } = await readModelFolder(store, dir);
  model.params.writeAll(weights, { source: dir });
}

/**
 * The policy of a training stage: the base `weights` alone (full fine-tuning), or with `peft`
 * the frozen base and its starting adapter. Also what the stage records: the adapter's
 * fingerprint (an input) and its resolved options.
 */
export async function trainingPolicy(
  store: FileStore,
  backend: Backend,
  o: {
    config: ModelConfig;
    weights: HostWeights;
    source: string;
    peft?: PeftOptions;
    modelOptions: LlamaModelOptions;
    seed: number;
    log?: (message: string) => void;
    /**
     * Runs before anything is allocated, with the adapter's options and whether an existing
     * adapter's frozen copy is kept as the reference adapter (the memory plan).
     */
    check?: (lora?: LoraOptions & { referenceAdapter?: boolean }) => void;
  },
): Promise<{ model: LlamaModel; adapter?: StartingAdapter; save?: AdapterSave }> {
  if (!o.peft) {
    o.check?.();
    const model = new LlamaModel(backend, o.config, o.modelOptions);
    model.params.writeAll(o.weights, { source: o.source });
    return { model };
  }
  const adapter = await startingAdapter(store, o.config, o.peft, o.seed, o.log);
  o.check?.({ ...adapter.options, referenceAdapter: adapter.fingerprint !== undefined });
  const model = loraPolicy(backend, o.config, o.weights, adapter, o.modelOptions, o.source);
  return { model, adapter, save: { baseModel: o.source, merge: o.peft.mergeAdapter ?? false } };
}

/** The manifest entries of a LoRA run: its resolved options, and an existing adapter's identity. */
export function adapterRecord(adapter?: StartingAdapter): {
  options: Record<string, unknown>;
  inputs: Record<string, string>;
} {
  if (!adapter) return { options: {}, inputs: {} };
  return {
    options: { lora: adapter.options },
    inputs: adapter.fingerprint ? { adapter: adapter.fingerprint } : {},
  };
}
