import assert from "node:assert/strict";
import {
  ConfigError,
  configFromHf,
  configToHf,
  type ModelConfig,
  parameterCount,
  parameterShapes,
} from "../../src/model/config.ts";

/** HuggingFaceTB/SmolLM2-135M's config.json. */
const SMOLLM2_135M = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: "silu",
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  model_type: "llama",
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.42.3",
  use_cache: true,
  vocab_size: 49152,
};

/** Qwen/Qwen2-7B's config.json (q/k/v biases, untied LM head). */
const QWEN2_7B = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  hidden_size: 3584,
  initializer_range: 0.02,
  intermediate_size: 18944,
  max_position_embeddings: 131072,
  max_window_layers: 28,
  model_type: "qwen2",
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-06,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.37.2",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 152064,
};

function errorOf(json: unknown, file?: string): ConfigError {
  try {
    configFromHf(json, { file });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error;
  }
  throw new Error("expected configFromHf to refuse the config");
}

Deno.test("configFromHf reads SmolLM2-135M (llama, GQA 9/3, tied) and counts 134,515,008 parameters", () => {
  const config = configFromHf(SMOLLM2_135M);
  assert.deepStrictEqual(
    config,
    {
      architecture: "LlamaForCausalLM",
      vocabSize: 49152,
      hiddenSize: 576,
      intermediateSize: 1536,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 100000,
      tieWordEmbeddings: true,
      attentionBias: false,
      maxPositionEmbeddings: 8192,
      bosTokenId: 0,
      eosTokenId: 0,
      padTokenId: null,
      torchDtype: "bfloat16",
    } satisfies ModelConfig,
  );
  assert.equal(parameterCount(config), 134_515_008); // SmolLM2-135M's num_parameters()
  assert.ok(!parameterShapes(config).some((p) => p.name === "lm_head.weight"));
});

Deno.test("configToHf then configFromHf gives back the llama config (torch_dtype becomes float32)", () => {
  const config = configFromHf(SMOLLM2_135M);
  const json = configToHf(config);
  assert.equal(json.model_type, "llama");
  assert.deepStrictEqual(json.architectures, ["LlamaForCausalLM"]);
  assert.equal(json.torch_dtype, "float32");
  assert.equal(typeof json.transformers_version, "string");
  assert.equal(json.rope_scaling, null);
  assert.equal(json.attention_bias, false);
  assert.equal(json.tie_word_embeddings, true);
  // Survives a trip through JSON text, as written to config.json.
  assert.deepStrictEqual(configFromHf(JSON.parse(JSON.stringify(json))), {
    ...config,
    torchDtype: "float32",
  });
});

Deno.test("configFromHf reads Qwen2-7B with q/k/v biases and an untied head (7,615,616,512 parameters)", () => {
  const config = configFromHf(QWEN2_7B);
  assert.equal(config.architecture, "Qwen2ForCausalLM");
  assert.equal(config.attentionBias, true);
  assert.equal(config.tieWordEmbeddings, false);
  assert.equal(config.headDim, 128);
  assert.equal(config.ropeTheta, 1e6);
  assert.equal(parameterCount(config), 7_615_616_512); // Qwen2-7B's num_parameters()
  const names = parameterShapes(config).map((p) => p.name);
  assert.ok(names.includes("model.layers.27.self_attn.k_proj.bias"));
  assert.ok(!names.includes("model.layers.0.self_attn.o_proj.bias"));
  assert.equal(names.at(-1), "lm_head.weight");
  const json = configToHf(config);
  assert.equal(json.model_type, "qwen2");
  assert.equal(json.use_sliding_window, false);
  assert.deepStrictEqual(configFromHf(JSON.parse(JSON.stringify(json))), {
    ...config,
    torchDtype: "float32",
  });
});

Deno.test("parameterShapes lists HF names and [out, in] shapes in module order", () => {
  const config = configFromHf({
    model_type: "qwen2",
    vocab_size: 11,
    hidden_size: 8,
    intermediate_size: 6,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    tie_word_embeddings: false,
  });
  assert.deepStrictEqual(parameterShapes(config), [
    { name: "model.embed_tokens.weight", shape: [11, 8] },
    { name: "model.layers.0.input_layernorm.weight", shape: [8] },
    { name: "model.layers.0.self_attn.q_proj.weight", shape: [16, 8] },
    { name: "model.layers.0.self_attn.q_proj.bias", shape: [16] },
    { name: "model.layers.0.self_attn.k_proj.weight", shape: [8, 8] },
    { name: "model.layers.0.self_attn.k_proj.bias", shape: [8] },
    { name: "model.layers.0.self_attn.v_proj.weight", shape: [8, 8] },
    { name: "model.layers.0.self_attn.v_proj.bias", shape: [8] },
    { name: "model.layers.0.self_attn.o_proj.weight", shape: [8, 16] },
    { name: "model.layers.0.post_attention_layernorm.weight", shape: [8] },
    { name: "model.layers.0.mlp.gate_proj.weight", shape: [6, 8] },
    { name: "model.layers.0.mlp.up_proj.weight", shape: [6, 8] },
    { name: "model.layers.0.mlp.down_proj.weight", shape: [8, 6] },
    { name: "model.norm.weight", shape: [8] },
    { name: "lm_head.weight", shape: [11, 8] },
  ]);
  // embed 88, norms 8+8+8, q 128+16, k and v 64+8 each, o 128, MLP 3*48, head 88.
  assert.equal(parameterCount(config), 760);
});

Deno.test("missing optional fields take the transformers defaults", () => {
  const config = configFromHf({
    vocab_size: 10,
    hidden_size: 8,
    intermediate_size: 4,
    num_hidden_layers: 2,
    num_attention_heads: 2,
  });
  assert.equal(config.architecture, "LlamaForCausalLM");
  assert.equal(config.numKvHeads, 2);
  assert.equal(config.headDim, 4);
  assert.equal(config.rmsNormEps, 1e-6);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(config.tieWordEmbeddings, false);
  assert.equal(config.maxPositionEmbeddings, 2048);
  assert.deepStrictEqual([config.bosTokenId, config.eosTokenId, config.padTokenId], [1, 2, null]);
  assert.equal(config.torchDtype, null);
});

Deno.test("a list of eos token ids and a mistral config without sliding window are accepted", () => {
  const config = configFromHf({
    ...SMOLLM2_135M,
    eos_token_id: [2, 7],
    model_type: "mistral",
    architectures: ["MistralForCausalLM"],
    sliding_window: null,
  });
  assert.deepStrictEqual(config.eosTokenId, [2, 7]);
  assert.equal(config.architecture, "LlamaForCausalLM");
});

Deno.test("rope_scaling other than null is refused, naming its type", () => {
  const llama3 = {
    rope_type: "llama3",
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
  };
  const error = errorOf({ ...SMOLLM2_135M, rope_scaling: llama3 }, "models/llama/config.json");
  assert.match(
    error.message,
    /^models\/llama\/config\.json: rope_scaling: rope_scaling type 'llama3' is not supported yet; /,
  );
  assert.equal(error.field, "rope_scaling");
  assert.match(
    errorOf({ ...SMOLLM2_135M, rope_scaling: { type: "linear", factor: 2 } }).message,
    /type 'linear' is not supported yet/,
  );
  // Explicitly plain RoPE is the same computation, so it loads (transformers 5 writes rope_parameters).
  assert.equal(
    configFromHf({ ...SMOLLM2_135M, rope_scaling: { rope_type: "default" } }).ropeTheta,
    100000,
  );
  const v5 = {
    ...SMOLLM2_135M,
    rope_theta: undefined,
    rope_parameters: { rope_type: "default", rope_theta: 5e5 },
  };
  assert.equal(configFromHf(v5).ropeTheta, 5e5);
  assert.match(
    errorOf({ ...SMOLLM2_135M, rope_parameters: { rope_type: "yarn", factor: 4 } }).message,
    /type 'yarn'/,
  );
});

Deno.test("features the engine does not compute are refused with the field named", () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ mlp_bias: true }, /^config\.json: mlp_bias: true is not supported/],
    [{ hidden_act: "gelu" }, /^config\.json: hidden_act: 'gelu' is not supported/],
    [
      { attention_bias: true },
      /^config\.json: attention_bias: true is not supported for llama: .*o_proj bias/,
    ],
    [
      { model_type: "gpt2", architectures: undefined },
      /^config\.json: model_type: 'gpt2' is not supported/,
    ],
    [
      { architectures: ["Qwen2ForCausalLM"] },
      /architectures: \["Qwen2ForCausalLM"\] does not match model_type 'llama'/,
    ],
    [
      { model_type: "mistral", architectures: undefined, sliding_window: 4096 },
      /sliding_window: 4096 is not supported/,
    ],
    [{ ...QWEN2_7B, use_sliding_window: true }, /use_sliding_window: true is not supported/],
    [{ attention_dropout: 0.1 }, /attention_dropout: 0\.1 is not supported/],
  ];
  for (const [change, pattern] of cases) {
    assert.match(errorOf({ ...SMOLLM2_135M, ...change }).message, pattern);
  }
});

Deno.test("invalid or missing sizes are refused with the field and the file named", () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ hidden_size: undefined }, /^ckpt\/config\.json: hidden_size: is required$/],
    [{ vocab_size: "49152" }, /vocab_size: must be a positive integer, got "49152"/],
    [{ num_hidden_layers: 0 }, /num_hidden_layers: must be a positive integer, got 0/],
    [{ num_key_value_heads: 4 }, /num_key_value_heads: 4 must divide num_attention_heads \(9\)/],
    [
      { hidden_size: 580 },
      /head_dim: is missing and hidden_size \(580\) is not a multiple of num_attention_heads \(9\)/,
    ],
    [{ head_dim: 63 }, /head_dim: 63 must be even/],
    [{ rms_norm_eps: -1 }, /rms_norm_eps: must be a positive number/],
    [{ tie_word_embeddings: "yes" }, /tie_word_embeddings: must be true or false/],
    [{ eos_token_id: [] }, /eos_token_id: must be a token id, a list of token ids or null/],
  ];
  for (const [change, pattern] of cases) {
    assert.match(errorOf({ ...SMOLLM2_135M, ...change }, "ckpt/config.json").message, pattern);
  }
  assert.match(errorOf([1, 2]).message, /config must be a JSON object/);
});
