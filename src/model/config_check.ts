/**
 * config.json's sizes checked against the safetensors headers before anything is built: every
 * tensor the config implies must be in the weights with the shape the config gives it. Since a
 * header's shapes are bounded by the bytes actually in the file, a hostile size (10^8 layers, a
 * vocabulary of 10^12) is refused here, naming the file, the field and its value, instead of
 * ending in an allocation failure or an out-of-memory crash.
 *
 * @module
 */

import { CheckpointError, type HeaderTensor } from "../io/checkpoint.ts";
import { ConfigError, type ModelConfig, parameterShapes } from "./config.ts";

/** Positions are u32 in the kernels and f32 in the rotary tables: exact up to 2^24. */
export const MAX_POSITION_EMBEDDINGS = 2 ** 24;

/** The config.json field behind each dimension of a parameter's shape, by tensor name suffix. */
function dimensionFields(name: string): string[] {
  if (/embed_tokens\.weight$|^lm_head\.weight$/.test(name)) return ["vocab_size", "hidden_size"];
  if (/(q_proj)\.(weight|bias)$/.test(name)) return ["num_attention_heads*head_dim", "hidden_size"];
  if (/(k_proj|v_proj)\.(weight|bias)$/.test(name)) {
    return ["num_key_value_heads*head_dim", "hidden_size"];
  }
  if (/o_proj\.weight$/.test(name)) return ["hidden_size", "num_attention_heads*head_dim"];
  if (/(gate_proj|up_proj)\.weight$/.test(name)) return ["intermediate_size", "hidden_size"];
  if (/down_proj\.weight$/.test(name)) return ["hidden_size", "intermediate_size"];
  return ["hidden_size"];
}

function fieldValue(config: ModelConfig, field: string): number {
  const values: Record<string, number> = {
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
  };
  return field.split("*").reduce((product, f) => product * values[f], 1);
}

/**
 * Checks that the weights hold every tensor `config` implies, with its shape.
 *
 * @param tensors every tensor's header entry (see `loadCheckpoint`'s `checkHeaders`)
 * @param configFile config.json's path, for messages
 * @throws {ConfigError} a size in config.json that the weights contradict (names the field and
 *   the value); {@link CheckpointError} a tensor the config implies that the weights lack.
 */
export function checkConfigAgainstWeights(
  config: ModelConfig,
  tensors: Map<string, HeaderTensor>,
  configFile: string,
): void {
  if (config.maxPositionEmbeddings > MAX_POSITION_EMBEDDINGS) {
    throw new ConfigError(
      configFile,
      "max_position_embeddings",
      `${config.maxPositionEmbeddings} exceeds ${MAX_POSITION_EMBEDDINGS} (positions are exact only up to 2^24)`,
    );
  }
  const weightsFile = [...new Set([...tensors.values()].map((t) => t.file))].join(", ") ||
    "the weights";
  // Layers first, from the names alone: the list of expected tensors grows with the layer count.
  let layers = 0;
  for (const name of tensors.keys()) {
    const match = /^model\.layers\.(\d{1,9})\./.exec(name);
    if (match) layers = Math.max(layers, Number(match[1]) + 1);
  }
  if (config.numLayers !== layers) {
    throw new ConfigError(
      configFile,
      "num_hidden_layers",
      `${config.numLayers}, but ${weightsFile} holds ${layers} layer${layers === 1 ? "" : "s"} ` +
        "(model.layers.N.*): the config and the weights are of different models",
    );
  }
  for (const { name, shape } of parameterShapes(config)) {
    const found = tensors.get(name);
    if (!found) {
      throw new CheckpointError(
        `${weightsFile} has no tensor '${name}' (shape [${shape}]), which ${configFile} implies; ` +
          "the config and the weights are of different models, or the weights are incomplete",
      );
    }
    if (found.shape.length === shape.length && found.shape.every((d, i) => d === shape[i])) {
      continue;
    }
    const fields = dimensionFields(name);
    const i = found.shape.length === shape.length
      ? shape.findIndex((d, k) => d !== found.shape[k])
      : 0;
    const field = fields[i] ?? fields[0];
    throw new ConfigError(
      configFile,
      field,
      `${fieldValue(config, field)} makes '${name}' [${shape}], but ${found.file} holds it as ` +
        `[${found.shape}]: the config and the weights are of different models`,
    );
  }
}
