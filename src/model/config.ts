/**
 * The model configuration of the Llama family, read from and written to a Hugging Face
 * `config.json`, and the parameter table (HF tensor names and shapes, `[out, in]`).
 *
 * Accepted: `model_type` llama, qwen2, or mistral without a sliding window (Mistral computes as
 * Llama then); RMSNorm, SiLU-gated MLP, plain RoPE. Refused with a message naming the field:
 * RoPE scaling (llama3, yarn, linear, dynamic...), MLP biases, Llama's `attention_bias` (it adds an
 * o_proj bias as well), sliding-window attention, other activations.
 *
 * @module
 */

/** The architectures the engine computes. */
export type Architecture = "LlamaForCausalLM" | "Qwen2ForCausalLM";

/** Model configuration, in camelCase; HF field names are given per field. */
export interface ModelConfig {
  /** The architecture (Llama or Qwen2), from `model_type`. */
  architecture: Architecture;
  /** `vocab_size`, V. */
  vocabSize: number;
  /** `hidden_size`, C. */
  hiddenSize: number;
  /** `intermediate_size`, F (MLP width). */
  intermediateSize: number;
  /** `num_hidden_layers`. */
  numLayers: number;
  /** `num_attention_heads`, H. */
  numHeads: number;
  /** `num_key_value_heads`, Hkv (grouped-query attention; H % Hkv = 0). */
  numKvHeads: number;
  /** `head_dim`, D (default C / H). */
  headDim: number;
  /** `rms_norm_eps`. */
  rmsNormEps: number;
  /** `rope_theta`. */
  ropeTheta: number;
  /** `tie_word_embeddings`: the LM head reuses `model.embed_tokens.weight`. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections have biases (always for Qwen2). */
  attentionBias: boolean;
  /** `max_position_embeddings`. */
  maxPositionEmbeddings: number;
  /** `bos_token_id`. */
  bosTokenId: number | null;
  /** `eos_token_id` (one id or a list). */
  eosTokenId: number | number[] | null;
  /** `pad_token_id`. */
  padTokenId: number | null;
  /** `torch_dtype` (or transformers 5's `dtype`) of the source checkpoint, e.g. "bfloat16". */
  torchDtype: string | null;
}

/** A config.json that the engine cannot run; the message names the file, the field and what to do. */
export class ConfigError extends Error {
  /** An error naming `file`, its `field` and what to do. */
  constructor(readonly file: string, readonly field: string, detail: string) {
    super(`${file}: ${field}: ${detail}`);
    this.name = "ConfigError";
  }
}

/** Options of {@link configFromHf}. */
export interface ConfigFromHfOptions {
  /** File name for error messages. @default "config.json" */
  file?: string;
}

/** HF defaults per model type, where the config classes differ (LlamaConfig, Qwen2Config, MistralConfig). */
const DEFAULTS = {
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, bos: 1, eos: 2 },
  mistral: { maxPositionEmbeddings: 4096 * 32, rmsNormEps: 1e-6, bos: 1, eos: 2 },
  qwen2: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bos: null, eos: null },
} as const;

const ARCHITECTURE_TYPES: Record<string, keyof typeof DEFAULTS> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

/**
 * Reads a Hugging Face config.json object into a {@link ModelConfig}, with the defaults of the
 * matching transformers config class for missing optional fields.
 *
 * @example
 * ```ts
 * const config = configFromHf(JSON.parse(await store.readText("model/config.json")), { file: "model/config.json" });
 * ```
 * @throws {ConfigError} for a missing or invalid field, or a feature the engine does not compute.
 */
export function configFromHf(json: unknown, options: ConfigFromHfOptions = {}): ModelConfig {
  const file = options.file ?? "config.json";
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(file, "(root)", "config must be a JSON object");
  }
  const raw = json as Record<string, unknown>;
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(file, field, detail);
  };
  const has = (field: string) => raw[field] !== undefined && raw[field] !== null;
  const positiveInt = (field: string, fallback?: number): number => {
    const value = has(field) ? raw[field] : fallback;
    if (value === undefined) fail(field, "is required");
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      fail(field, `must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const positiveNumber = (field: string, fallback: number): number => {
    const value = has(field) ? raw[field] : fallback;
    if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
      fail(field, `must be a positive number, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const boolean = (field: string, fallback: boolean): boolean => {
    const value = has(field) ? raw[field] : fallback;
    if (typeof value !== "boolean") {
      fail(field, `must be true or false, got ${JSON.stringify(value)}`);
    }
    return value as boolean;
  };
  const tokenId = (
    field: string,
    fallback: number | null,
    allowList = false,
  ): number | number[] | null => {
    const value = raw[field] === undefined ? fallback : raw[field];
    const isId = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
    if (value === null || isId(value)) return value as number | null;
    if (allowList && Array.isArray(value) && value.length > 0 && value.every(isId)) {
      return [...value] as number[];
    }
    return fail(
      field,
      `must be a token id${allowList ? ", a list of token ids" : ""} or null, got ${
        JSON.stringify(value)
      }`,
    );
  };

  // Model type: from model_type, else from architectures, else Llama.
  let modelType: keyof typeof DEFAULTS = "llama";
  if (has("model_type")) {
    const type = raw.model_type;
    if (type !== "llama" && type !== "qwen2" && type !== "mistral") {
      fail(
        "model_type",
        `'${type}' is not supported; the engine runs llama, qwen2 and mistral (without sliding window) models`,
      );
    }
    modelType = type as keyof typeof DEFAULTS;
  }
  if (has("architectures")) {
    const architectures = raw.architectures;
    const known = Array.isArray(architectures) && architectures.length === 1
      ? ARCHITECTURE_TYPES[architectures[0] as string]
      : undefined;
    if (!known) {
      const expected = Object.keys(ARCHITECTURE_TYPES).join(", ");
      fail(
        "architectures",
        `${JSON.stringify(architectures)} is not supported; expected one of ${expected}`,
      );
    }
    if (has("model_type") && known !== modelType) {
      fail(
        "architectures",
        `${JSON.stringify(architectures)} does not match model_type '${modelType}'`,
      );
    }
    modelType = known!;
  }
  const defaults = DEFAULTS[modelType];

  const hiddenSize = positiveInt("hidden_size");
  const numHeads = positiveInt("num_attention_heads");
  const numKvHeads = positiveInt("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    fail("num_key_value_heads", `${numKvHeads} must divide num_attention_heads (${numHeads})`);
  }
  if (!has("head_dim") && hiddenSize % numHeads !== 0) {
    fail(
      "head_dim",
      `is missing and hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}); set head_dim`,
    );
  }
  const headDim = positiveInt("head_dim", hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    fail("head_dim", `${headDim} must be even (RoPE rotates the two halves of each head)`);
  }

  const act = has("hidden_act") ? raw.hidden_act : "silu";
  if (act !== "silu") fail("hidden_act", `'${act}' is not supported; the MLP is SwiGLU with silu`);
  if (boolean("mlp_bias", false)) {
    fail("mlp_bias", "true is not supported: the engine's MLP projections have no bias");
  }

  refuseRopeScaling(raw, fail);
  let ropeTheta = positiveNumber("rope_theta", 10000);
  const ropeParameters = raw.rope_parameters as Record<string, unknown> | null | undefined;
  if (
    ropeParameters && typeof ropeParameters === "object" && ropeParameters.rope_theta !== undefined
  ) {
    // transformers 5 moves rope_theta into rope_parameters.
    if (typeof ropeParameters.rope_theta !== "number" || !(ropeParameters.rope_theta > 0)) {
      fail(
        "rope_parameters.rope_theta",
        `must be a positive number, got ${JSON.stringify(ropeParameters.rope_theta)}`,
      );
    }
    ropeTheta = ropeParameters.rope_theta as number;
  }

  // Qwen2Attention: q/k/v always have a bias, o_proj never. LlamaAttention's attention_bias also
  // puts a bias on o_proj, which the engine does not compute. Mistral has no biases.
  const attentionBias = modelType === "qwen2";
  const full = "is not supported: the engine computes full causal attention";
  if (modelType === "qwen2" && boolean("use_sliding_window", false)) {
    fail("use_sliding_window", `true ${full}`);
  }
  if (modelType === "mistral" && has("sliding_window")) {
    fail("sliding_window", `${JSON.stringify(raw.sliding_window)} ${full}; use null`);
  }
  if (modelType === "llama" && boolean("attention_bias", false)) {
    fail("attention_bias", "true is not supported for llama: it adds an o_proj bias as well");
  }
  const dropout = raw.attention_dropout ?? 0;
  if (dropout !== 0) {
    fail("attention_dropout", `${JSON.stringify(dropout)} is not supported (no dropout); use 0.0`);
  }

  const dtype = raw.torch_dtype ?? raw.dtype ?? null;
  return {
    architecture: modelType === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
    vocabSize: positiveInt("vocab_size"),
    hiddenSize,
    intermediateSize: positiveInt("intermediate_size"),
    numLayers: positiveInt("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber("rms_norm_eps", defaults.rmsNormEps),
    ropeTheta,
    tieWordEmbeddings: boolean("tie_word_embeddings", false),
    attentionBias,
    maxPositionEmbeddings: positiveInt("max_position_embeddings", defaults.maxPositionEmbeddings),
    bosTokenId: tokenId("bos_token_id", defaults.bos) as number | null,
    eosTokenId: tokenId("eos_token_id", defaults.eos, true),
    padTokenId: tokenId("pad_token_id", null) as number | null,
    torchDtype: typeof dtype === "string" ? dtype : null,
  };
}

/** RoPE scaling changes the rotary frequencies; only plain RoPE (`null` or type "default") is computed. */
function refuseRopeScaling(
  raw: Record<string, unknown>,
  fail: (field: string, detail: string) => never,
): void {
  for (const field of ["rope_scaling", "rope_parameters"]) {
    const scaling = raw[field];
    if (scaling === undefined || scaling === null) continue;
    if (typeof scaling !== "object" || Array.isArray(scaling)) {
      fail(field, `must be an object or null, got ${JSON.stringify(scaling)}`);
    }
    const record = scaling as Record<string, unknown>;
    const type = record.rope_type ?? record.type ??
      (field === "rope_parameters" ? "default" : undefined);
    if (type === "default") continue;
    const what = `rope_scaling type '${type ?? "unknown"}' is not supported yet`;
    fail(field, `${what}; the engine computes plain RoPE: use a model with "rope_scaling": null`);
  }
}

/** Options of {@link configToHf}. */
export interface ConfigToHfOptions {
  /** `torch_dtype` to record: the dtype the weights are saved in. @default "float32" */
  torchDtype?: string;
  /** `transformers_version` to record. @default "4.46.0" */
  transformersVersion?: string;
}

/**
 * A config.json object for a {@link ModelConfig} that transformers' `AutoModelForCausalLM` loads
 * (LlamaConfig or Qwen2Config fields, plain RoPE, no dropout).
 */
export function configToHf(
  config: ModelConfig,
  options: ConfigToHfOptions = {},
): Record<string, unknown> {
  const qwen2 = config.architecture === "Qwen2ForCausalLM";
  const common = {
    architectures: [config.architecture],
    model_type: qwen2 ? "qwen2" : "llama",
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    hidden_act: "silu",
    max_position_embeddings: config.maxPositionEmbeddings,
    initializer_range: 0.02,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    attention_dropout: 0.0,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    pad_token_id: config.padTokenId,
    use_cache: true,
    torch_dtype: options.torchDtype ?? "float32",
    transformers_version: options.transformersVersion ?? "4.46.0",
  };
  if (qwen2) {
    if (!config.attentionBias) {
      throw new Error("configToHf: Qwen2 models always have q/k/v biases; set attentionBias");
    }
    return {
      ...common,
      use_sliding_window: false,
      sliding_window: null,
      max_window_layers: config.numLayers,
    };
  }
  return { ...common, attention_bias: config.attentionBias, mlp_bias: false, pretraining_tp: 1 };
}

/** One parameter tensor: its HF name and shape (`[out, in]` for projections). */
export interface ParameterShape {
  /** The HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Its shape. */
  shape: number[];
}

/**
 * Every parameter in the order of the HF module tree (embedding, layers, final norm, LM head),
 * named as in the HF checkpoint. `lm_head.weight` is listed only when the embedding is not tied.
 */
export function parameterShapes(config: ModelConfig): ParameterShape[] {
  const {
    vocabSize: V,
    hiddenSize: C,
    intermediateSize: F,
    numHeads: H,
    numKvHeads: Hkv,
    headDim: D,
  } = config;
  const shapes: ParameterShape[] = [{ name: "model.embed_tokens.weight", shape: [V, C] }];
  for (let i = 0; i < config.numLayers; i++) {
    const layer = `model.layers.${i}`;
    shapes.push({ name: `${layer}.input_layernorm.weight`, shape: [C] });
    for (
      const [proj, rows] of [["q_proj", H * D], ["k_proj", Hkv * D], ["v_proj", Hkv * D]] as const
    ) {
      shapes.push({ name: `${layer}.self_attn.${proj}.weight`, shape: [rows, C] });
      if (config.attentionBias) {
        shapes.push({ name: `${layer}.self_attn.${proj}.bias`, shape: [rows] });
      }
    }
    shapes.push(
      { name: `${layer}.self_attn.o_proj.weight`, shape: [C, H * D] },
      { name: `${layer}.post_attention_layernorm.weight`, shape: [C] },
      { name: `${layer}.mlp.gate_proj.weight`, shape: [F, C] },
      { name: `${layer}.mlp.up_proj.weight`, shape: [F, C] },
      { name: `${layer}.mlp.down_proj.weight`, shape: [C, F] },
    );
  }
  shapes.push({ name: "model.norm.weight", shape: [C] });
  if (!config.tieWordEmbeddings) shapes.push({ name: "lm_head.weight", shape: [V, C] });
  return shapes;
}

/** Number of trainable parameters (a tied LM head counts once, as `model.num_parameters()` does). */
export function parameterCount(config: ModelConfig): number {
  return parameterShapes(config).reduce(
    (total, { shape }) => total + shape.reduce((a, b) => a * b, 1),
    0,
  );
}
