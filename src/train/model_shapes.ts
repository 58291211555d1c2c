/**
 * Hugging Face models' shapes (their config.json fields), for planning and benchmarking a model
 * that is not on this machine: `deno task plan --shape Qwen2.5-1.5B`.
 *
 * @module
 */

import { configFromHf, type ModelConfig } from "../model/config.ts";

const llama = (o: Record<string, number>) => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  tie_word_embeddings: true,
  hidden_act: "silu",
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  max_position_embeddings: 8192,
  ...o,
});

const qwen2 = (o: Record<string, number>) => ({
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  tie_word_embeddings: true,
  hidden_act: "silu",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  max_position_embeddings: 32768,
  ...o,
});

/** The shapes by name (the hub's config.json values). */
export const MODEL_SHAPES: Record<string, Record<string, unknown>> = {
  "SmolLM2-135M": llama({
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    vocab_size: 49152,
  }),
  "Qwen2.5-0.5B": qwen2({
    hidden_size: 896,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    intermediate_size: 4864,
    vocab_size: 151936,
  }),
  "Qwen2.5-1.5B": qwen2({
    hidden_size: 1536,
    num_hidden_layers: 28,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    intermediate_size: 8960,
    vocab_size: 151936,
  }),
};

/** The model config of a named shape. @throws RangeError naming the known shapes. */
export function shapeConfig(name: string): ModelConfig {
  const raw = MODEL_SHAPES[name];
  if (!raw) {
    throw new RangeError(
      `unknown shape "${name}": expected one of ${Object.keys(MODEL_SHAPES).join(", ")}`,
    );
  }
  return configFromHf(raw);
}
