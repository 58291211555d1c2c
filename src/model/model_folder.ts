/**
 * A model folder in HF layout <-> a {@link LlamaModel} on a backend: config.json and
 * model.safetensors (or shards) in, config.json and model.safetensors (F32) out, plus the
 * tokenizer files copied along so the folder stays usable by transformers.
 *
 * @module
 */

import { type FrozenDtype, NonFiniteError } from "./params.ts";
import type { Backend } from "../backend/mod.ts";
import { loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { type FileStore, joinPath } from "../io/fs.ts";
import { fingerprintJson, sha256Hex } from "../io/hash.ts";
import { configFromHf, configToHf, type ModelConfig } from "./config.ts";
import { checkConfigAgainstWeights } from "./config_check.ts";
import { LlamaModel, type LlamaModelOptions } from "./llama.ts";

/** Tokenizer and generation files copied next to saved weights when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "generation_config.json",
];

/** Weights on the host, keyed by HF name. */
export type HostWeights = Map<string, { shape: number[]; data: ArrayLike<number> }>;

/** A model folder read into host memory. */
export interface LoadedWeights {
  config: ModelConfig;
  rawConfig: Record<string, unknown>;
  weights: HostWeights;
  /** How the checkpoint stores its matrices: `bf16` / `f16` when all of them are, else `f32`. */
  dtype: FrozenDtype;
}

/**
 * The precision frozen weights are held in: `auto` keeps the checkpoint's (2 bytes per element
 * for a bf16 or f16 checkpoint, widened inside the kernels), `f32` widens them at load.
 */
export type FrozenDtypeChoice = "auto" | "f32";

/** The frozen dtype of a loaded model under `choice` (default `auto`). */
export function frozenDtypeOf(
  loaded: { dtype: FrozenDtype },
  choice?: FrozenDtypeChoice,
): FrozenDtype {
  return choice === "f32" ? "f32" : loaded.dtype;
}

/**
 * How a checkpoint stores its matrices, from its safetensors headers: `bf16` / `f16` when all of
 * them are, else `f32` (what {@link LoadedWeights.dtype} says, and a memory plan counts).
 */
export function storedDtype(tensors: Iterable<{ shape: number[]; dtype: string }>): FrozenDtype {
  const matrices = [...tensors].filter((t) => t.shape.length > 1);
  for (const [file, held] of [["BF16", "bf16"], ["F16", "f16"]] as const) {
    if (matrices.length && matrices.every((t) => t.dtype === file)) return held;
  }
  return "f32";
}

/** Tensors HF checkpoints may hold that the model does not use. */
const IGNORED_SUFFIXES = ["rotary_emb.inv_freq"];

/** Reads config.json and the weights of a model folder. */
export async function readModelFolder(fs: FileStore, dir: string): Promise<LoadedWeights> {
  const configFile = joinPath(dir, "config.json");
  let config: ModelConfig | undefined;
  let dtype: FrozenDtype = "f32";
  // Sizes are checked against the headers before any tensor is decoded or any array made.
  const checkpoint = await loadCheckpoint(fs, dir, {
    checkHeaders: (tensors, raw) => {
      config = configFromHf(raw, { file: configFile });
      checkConfigAgainstWeights(config, tensors, configFile);
      dtype = storedDtype(tensors.values());
    },
  });
  if (!config) throw new Error("unreachable: loadCheckpoint checks the headers");
  const weights: HostWeights = new Map();
  for (const [name, t] of checkpoint.tensors) {
    // Some tied checkpoints also store lm_head.weight (a copy of the embedding): drop it.
    if (config.tieWordEmbeddings && name === "lm_head.weight") continue;
    if (IGNORED_SUFFIXES.some((s) => name.endsWith(s))) continue;
    weights.set(name, t);
  }
  return { config, rawConfig: checkpoint.config as Record<string, unknown>, weights, dtype };
}

/** Loads a model folder onto `backend`. */
export async function loadModel(
  fs: FileStore,
  dir: string,
  backend: Backend,
  options: LlamaModelOptions,
): Promise<{ model: LlamaModel; rawConfig: Record<string, unknown> }> {
  const { config, rawConfig, weights } = await readModelFolder(fs, dir);
  const model = new LlamaModel(backend, config, options);
  model.params.writeAll(weights, { source: dir });
  return { model, rawConfig };
}

/**
 * Fingerprint of a model: SHA-256 over its config and the bytes of its weights in HF order.
 * Weights are hashed as f32, so an F16 folder and its F32 re-save have the same fingerprint.
 */
export async function modelFingerprint(config: ModelConfig, weights: HostWeights): Promise<string> {
  const parts: string[] = [await fingerprintJson(config)];
  for (const name of [...weights.keys()].sort()) {
    const data = Float32Array.from(weights.get(name)!.data);
    parts.push(`${name}:${await sha256Hex(new Uint8Array(data.buffer))}`);
  }
  return await sha256Hex(parts.join("\n"));
}

/**
 * Saves a model's weights to `dir` in HF layout (F32), with config.json and the tokenizer files
 * of `tokenizerFrom` copied alongside. Every file is written atomically.
 */
export async function saveModel(
  fs: FileStore,
  dir: string,
  model: LlamaModel,
  options: { tokenizerFrom?: string; rawConfig?: Record<string, unknown> } = {},
): Promise<void> {
  await saveWeights(fs, dir, model.config, await model.params.readAll(), options);
}

/** Saves host `weights` of `config` to `dir` as {@link saveModel} does. */
export async function saveWeights(
  fs: FileStore,
  dir: string,
  modelConfig: ModelConfig,
  weights: HostWeights,
  { tokenizerFrom, rawConfig }: { tokenizerFrom?: string; rawConfig?: Record<string, unknown> } =
    {},
): Promise<void> {
  for (const [name, t] of weights) {
    const bad = Array.prototype.findIndex.call(t.data, (x: number) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new NonFiniteError(
        `not saving ${dir}: tensor ${name} holds ${t.data[bad]} at element ${bad} (training ` +
          "diverged; lower --learning-rate or set --max-grad-norm)",
      );
    }
  }
  const tensors = new Map(
    [...weights].map(([name, t]) => [name, { shape: t.shape, data: Float32Array.from(t.data) }]),
  );
  const config = { ...(rawConfig ?? {}), ...configToHf(modelConfig) };
  await fs.mkdirp(dir);
  await saveCheckpoint(fs, dir, config, tensors);
  if (tokenizerFrom && tokenizerFrom !== dir) await copyTokenizerFiles(fs, tokenizerFrom, dir);
}

/** Copies the tokenizer files that exist in `from` to `to`. */
export async function copyTokenizerFiles(fs: FileStore, from: string, to: string): Promise<void> {
  for (const name of TOKENIZER_FILES) {
    const src = joinPath(from, name);
    if (await fs.exists(src)) await fs.writeFileAtomic(joinPath(to, name), await fs.readFile(src));
  }
}
