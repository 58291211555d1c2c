/**
 * Checkpoint folders in the Hugging Face layout, as `save_pretrained` writes and
 * `from_pretrained` reads them:
 *
 *     config.json
 *     model.safetensors                      (one file), or
 *     model.safetensors.index.json           {"metadata": {...}, "weight_map": {name: shard}}
 *     model-00001-of-00002.safetensors ...   (shards)
 *
 * Tensors come back as float32 whatever their stored dtype; the config comes back as raw JSON
 * (turn it into a model config with `configFromHf`). Saving writes config.json and one F32
 * model.safetensors, each atomically.
 *
 * @module
 */

import { FileNotFoundError, type FileStore, joinPath } from "./fs.ts";
import {
  decodeTensor,
  parseSafetensorsHeader,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type TensorData,
  type WritableDtype,
  writeSafetensors,
} from "./safetensors.ts";

/** File names of the layout, as transformers spells them. */
export const CONFIG_FILE = "config.json";
/** Single-file weights. */
export const WEIGHTS_FILE = "model.safetensors";
/** Index of sharded weights. */
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";

/** A loaded checkpoint. */
export interface Checkpoint {
  /** config.json as parsed JSON. */
  config: Record<string, unknown>;
  /** Every tensor, by HF name, widened to float32. */
  tensors: Map<string, TensorData>;
}

/** A tensor as its file's header describes it, before its data is decoded. */
export interface HeaderTensor extends SafetensorsEntry {
  /** The weights file that holds it. */
  file: string;
}

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /**
   * Called with every tensor's header entry (and config.json) after all headers are parsed and
   * before any tensor is decoded, so a caller can refuse sizes before anything is allocated.
   */
  checkHeaders?: (tensors: Map<string, HeaderTensor>, config: Record<string, unknown>) => void;
}

/** A checkpoint folder that cannot be loaded; the message names the file and what to do. */
export class CheckpointError extends Error {
  /** An error whose message names the file and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

async function readJson(
  fs: FileStore,
  path: string,
  what: string,
): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readText(path);
  } catch (error) {
    if (error instanceof FileNotFoundError) throw new CheckpointError(`${path} not found: ${what}`);
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CheckpointError(`${path} is not valid JSON (${reason}); fix or re-download it`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CheckpointError(`${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Loads a checkpoint folder: config.json plus model.safetensors, or the shards listed by
 * model.safetensors.index.json (model.safetensors wins when both exist, as in transformers).
 *
 * @example
 * ```ts
 * const { config, tensors } = await loadCheckpoint(new DenoFileStore(), "data/base-model");
 * ```
 * @throws {CheckpointError} missing config or weights, a shard that lacks a tensor its index
 *   lists, a tensor present in two files; {@link SafetensorsError} for malformed weight files.
 */
export async function loadCheckpoint(
  fs: FileStore,
  dir: string,
  options: LoadCheckpointOptions = {},
): Promise<Checkpoint> {
  const config = await readJson(
    fs,
    joinPath(dir, CONFIG_FILE),
    `a checkpoint folder needs the model's config.json beside its weights (save it with save_pretrained, or copy it from the model's repository)`,
  );
  // Phase 1: every weights file read and its header parsed; nothing decoded yet.
  const files: {
    path: string;
    bytes: Uint8Array;
    header: SafetensorsHeader;
    names?: Set<string>;
  }[] = [];
  const single = joinPath(dir, WEIGHTS_FILE);
  const indexPath = joinPath(dir, WEIGHTS_INDEX_FILE);
  if (await fs.exists(single)) {
    const bytes = await fs.readFile(single);
    files.push({ path: single, bytes, header: parseSafetensorsHeader(bytes, single) });
  } else {
    if (!(await fs.exists(indexPath))) {
      const hasBin = (await fs.exists(joinPath(dir, "pytorch_model.bin"))) ||
        (await fs.exists(joinPath(dir, "pytorch_model.bin.index.json")));
      throw new CheckpointError(
        `no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} in ${dir}: ` +
          (hasBin
            ? "PyTorch .bin weights are not supported; convert them with `model.save_pretrained(dir, safe_serialization=True)`"
            : "save the model with `save_pretrained(dir)` (safetensors is the default) or download model.safetensors"),
      );
    }
    for (const [shard, names] of await shardsOfIndex(fs, indexPath)) {
      const path = joinPath(dir, shard);
      let bytes: Uint8Array;
      try {
        bytes = await fs.readFile(path);
      } catch (error) {
        if (error instanceof FileNotFoundError) {
          throw new CheckpointError(
            `${path} not found: ${indexPath} lists it as a shard; download every shard of the checkpoint`,
          );
        }
        throw error;
      }
      const header = parseSafetensorsHeader(bytes, path);
      const present = new Set(header.entries.map((e) => e.name));
      for (const name of names) {
        if (!present.has(name)) {
          throw new CheckpointError(
            `${path} has no tensor '${name}', which ${indexPath} places there; the index and shards do not match, re-download the checkpoint`,
          );
        }
      }
      files.push({ path, bytes, header, names });
    }
  }
  const entries = new Map<string, HeaderTensor>();
  for (const { path, header, names } of files) {
    for (const entry of header.entries) {
      if (!names || names.has(entry.name)) entries.set(entry.name, { ...entry, file: path });
    }
  }
  options.checkHeaders?.(entries, config);
  // Phase 2: decode.
  const tensors = new Map<string, TensorData>();
  for (const { path, bytes, header, names } of files) {
    for (const entry of header.entries) {
      if (names && !names.has(entry.name)) continue;
      tensors.set(entry.name, {
        shape: entry.shape,
        data: decodeTensor(bytes, header, entry, path),
      });
    }
  }
  return { config, tensors };
}

/** The shard files of an index, each with the tensor names the index places there. */
async function shardsOfIndex(
  fs: FileStore,
  indexPath: string,
): Promise<Map<string, Set<string>>> {
  const index = await readJson(fs, indexPath, "unreachable");
  const weightMap = index.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(
      `${indexPath}: "weight_map" must be an object of tensor name -> shard file`,
    );
  }
  const namesByShard = new Map<string, Set<string>>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (
      typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\")
    ) {
      throw new CheckpointError(
        `${indexPath}: weight_map entry for '${name}' must be a shard file name in the same folder, got ${
          JSON.stringify(shard)
        }`,
      );
    }
    if (!namesByShard.has(shard)) namesByShard.set(shard, new Set());
    namesByShard.get(shard)!.add(name);
  }
  return namesByShard;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** Dtype of the weights file. @default "F32" (matches torch_dtype "float32" from configToHf) */
  dtype?: WritableDtype;
}

/**
 * Writes a checkpoint folder that transformers' `from_pretrained` loads: model.safetensors (F32,
 * `{"format":"pt"}` metadata) and config.json, each through a temporary file and a rename, so an
 * interrupted save never leaves a truncated file under the final name. The folder is created if
 * missing. Weights go first so that a config.json always sits next to complete weights.
 *
 * @param rawConfig config.json content (e.g. from `configToHf`)
 * @param tensors tensors by HF name
 */
export async function saveCheckpoint(
  fs: FileStore,
  dir: string,
  rawConfig: Record<string, unknown>,
  tensors: Map<string, TensorData>,
  options: SaveCheckpointOptions = {},
): Promise<void> {
  await fs.mkdirp(dir);
  const weights = writeSafetensors(tensors, { dtype: options.dtype ?? "F32" });
  await fs.writeFileAtomic(joinPath(dir, WEIGHTS_FILE), weights);
  const configText = JSON.stringify(rawConfig, null, 2) + "\n";
  await fs.writeFileAtomic(joinPath(dir, CONFIG_FILE), new TextEncoder().encode(configText));
}
