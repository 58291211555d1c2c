/**
 * Training-step benchmark: a DPO step (forward + backward of 2P sequences, the sigmoid loss on
 * cached reference log-probs, AdamW) on random tokens, timed on the backend, with the work and
 * memory counters of a step. Used by `deno task bench`.
 *
 * @module
 */

import type { Backend, Role } from "../backend/mod.ts";
import { configFromHf, type ModelConfig } from "../model/config.ts";
import { initWeights } from "../model/init.ts";
import { seededRandom } from "../data/sampler.ts";
import { LlamaModel } from "../model/llama.ts";
import { DeviceOptimizer } from "./optimizer.ts";
import { Trainer } from "./trainer.ts";
import { resolveLossSpec } from "../backend/losses.ts";

/** A benchmark configuration: model shape and batch. */
export interface StepBenchConfig {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  pairs: number;
  seqLen: number;
  /** The architecture: Qwen2 adds q/k/v biases. @default "llama" */
  modelType?: "llama" | "qwen2";
  /** Recompute layer activations in the backward (TRL's gradient_checkpointing). @default false */
  gradientCheckpointing?: boolean;
}

/** The two configurations of the engine issue. */
export const STEP_BENCH_CONFIGS: StepBenchConfig[] = [
  {
    name: "0.8M d128 L4",
    hidden: 128,
    layers: 4,
    heads: 4,
    kvHeads: 2,
    ffn: 344,
    vocab: 256,
    pairs: 16,
    seqLen: 64,
  },
  {
    name: "3.4M d256 L4",
    hidden: 256,
    layers: 4,
    heads: 4,
    kvHeads: 4,
    ffn: 688,
    vocab: 512,
    pairs: 8,
    seqLen: 128,
  },
];

const SMOLLM2_135M = {
  name: "SmolLM2-135M shape",
  hidden: 576,
  layers: 30,
  heads: 9,
  kvHeads: 3,
  ffn: 1536,
  vocab: 49152,
};

/**
 * Larger shapes (`deno task bench --large`): HF models' shapes with random weights, tied
 * embeddings. With `--steps 0` they are only allocated, so their memory is measured anywhere.
 */
export const LARGE_BENCH_CONFIGS: StepBenchConfig[] = [
  { ...SMOLLM2_135M, pairs: 4, seqLen: 256 },
  { ...SMOLLM2_135M, pairs: 4, seqLen: 256, gradientCheckpointing: true },
  { ...SMOLLM2_135M, pairs: 4, seqLen: 1024, gradientCheckpointing: true },
  {
    name: "Qwen2.5-0.5B shape",
    modelType: "qwen2",
    hidden: 896,
    layers: 24,
    heads: 14,
    kvHeads: 2,
    ffn: 4864,
    vocab: 151936,
    pairs: 2,
    seqLen: 1024,
    gradientCheckpointing: true,
  },
];

/** Result of {@link benchStep}; the timings and counters are null when no step ran. */
export interface StepBenchResult {
  name: string;
  params: number;
  pairs: number;
  seq_len: number;
  tokens_per_step: number;
  gradient_checkpointing: boolean;
  seconds_per_step: number | null;
  tokens_per_s: number | null;
  /** 6 × parameters × tokens/s, in GFLOP/s. */
  gflops: number | null;
  dispatches_per_step: number | null;
  submits_per_step: number | null;
  readbacks_per_step: number | null;
  /** Bytes allocated per role, everything of the step included. */
  bytes: Record<Role, number>;
  /** PyTorch's tokens/s on the same step and device ({@link mergePytorchStep}), when measured. */
  pytorch_tokens_per_s?: number;
  /** What the PyTorch figure was measured with. */
  pytorch?: Record<string, unknown>;
}

/** The fields of docs/bench/pytorch_dpo_step.py's JSON that the merge reads. */
export interface PytorchStep {
  name: string;
  params: number;
  pairs: number;
  seq_len: number;
  tokens_per_s: number;
  [other: string]: unknown;
}

/** Checks the PyTorch script's JSON. @throws RangeError naming the bad or missing field */
export function parsePytorchStep(value: unknown): PytorchStep {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RangeError("expected one JSON object (docs/bench/pytorch_dpo_step.py's output)");
  }
  if (typeof v.name !== "string" || !v.name) throw new RangeError('"name": expected a string');
  for (const key of ["params", "pairs", "seq_len"]) {
    if (!Number.isInteger(v[key]) || (v[key] as number) <= 0) {
      throw new RangeError(`"${key}": expected a positive whole number, got ${v[key]}`);
    }
  }
  const t = v.tokens_per_s;
  if (typeof t !== "number" || !(t > 0) || !Number.isFinite(t)) {
    throw new RangeError(`"tokens_per_s": expected a positive number, got ${t}`);
  }
  return v as PytorchStep;
}

/** Whether a bench configuration is the step the PyTorch figure measured (no checkpointing). */
export function pytorchMatches(c: StepBenchConfig, p: PytorchStep): boolean {
  return c.name === p.name && c.pairs === p.pairs && c.seqLen === p.seq_len &&
    !c.gradientCheckpointing;
}

/**
 * Records the PyTorch figure in the matching row (same name, pairs and sequence length, no
 * gradient checkpointing) as `pytorch_tokens_per_s`, with what it was measured with.
 * @returns the row merged into, or undefined when none matches
 * @throws RangeError when the matching row's parameter count differs (another model)
 */
export function mergePytorchStep(
  rows: StepBenchResult[],
  p: PytorchStep,
): StepBenchResult | undefined {
  const row = rows.find((r) =>
    r.name === p.name && r.pairs === p.pairs && r.seq_len === p.seq_len && !r.gradient_checkpointing
  );
  if (!row) return undefined;
  if (row.params !== p.params) {
    throw new RangeError(
      `PyTorch's "${p.name}" has ${p.params} parameters, the bench row ${row.params}: not one model`,
    );
  }
  const { name: _n, params: _p, pairs: _r, seq_len: _s, tokens_per_s, ...rest } = p;
  row.pytorch_tokens_per_s = tokens_per_s;
  row.pytorch = rest;
  return row;
}

/** A Llama config of the benchmark's shape. */
export function benchModelConfig(c: StepBenchConfig): ModelConfig {
  return configFromHf({
    architectures: [c.modelType === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: c.modelType ?? "llama",
    vocab_size: c.vocab,
    hidden_size: c.hidden,
    intermediate_size: c.ffn,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: "silu",
    max_position_embeddings: Math.max(2048, c.seqLen),
  });
}

/**
 * Times `steps` DPO steps after `warmup` (at least one) warm-up steps (pipelines compiled, bind
 * groups built).
 * Waits for the device only at the end, as a training loop would. With `steps` 0 it only
 * allocates the model, the optimizer and the step's tensors and reports their bytes.
 */
export async function benchStep(
  backend: Backend,
  c: StepBenchConfig,
  { steps = 2, liveReference = false, warmup = 1 }: {
    steps?: number;
    liveReference?: boolean;
    /** Untimed steps first (the first may tune new shapes; a second runs the tuned kernels). */
    warmup?: number;
  } = {},
): Promise<StepBenchResult> {
  const config = benchModelConfig(c);
  const B = 2 * c.pairs, T = c.seqLen;
  const gradientCheckpointing = c.gradientCheckpointing ?? false;
  const model = new LlamaModel(backend, config, {
    maxBatch: B,
    maxSeqLen: T,
    gradientCheckpointing,
  });
  model.params.writeAll(initWeights(model.layout, { seed: 0 }));
  const optimizer = new DeviceOptimizer(backend, model.layout, { lr: 1e-4 });
  // With a live reference, a frozen second model runs its forward in every step.
  let reference: LlamaModel | undefined;
  if (liveReference) {
    reference = new LlamaModel(backend, config, { maxBatch: B, maxSeqLen: T, trainable: false });
    reference.params.writeAll(initWeights(reference.layout, { seed: 0 }));
  }
  const objective = { kind: "preference", spec: resolveLossSpec({ lossType: "sigmoid" }) } as const;
  const trainer = new Trainer(model, optimizer, objective, reference);
  const rand = seededRandom(1);
  const inputIds = Int32Array.from({ length: B * T }, () => Math.floor(rand() * c.vocab));
  // Prompt = first quarter of each row; the rest is completion.
  const targets = Int32Array.from({ length: B * T }, (_, i) => {
    const t = i % T;
    return t >= T / 4 && t + 1 < T ? inputIds[i + 1] : -1;
  });
  const micro = [{
    batch: { inputIds, targets, rows: B, T, tokenCounts: new Int32Array(B).fill(T - T / 4 - 1) },
    referenceLogps: liveReference ? undefined : new Float32Array(B).fill(-100),
  }];
  const tokens = B * T;
  const params = model.layout.count;
  const shape = {
    name: c.name,
    params,
    pairs: c.pairs,
    seq_len: T,
    tokens_per_step: tokens,
    gradient_checkpointing: gradientCheckpointing,
  };
  if (steps === 0) {
    return {
      ...shape,
      seconds_per_step: null,
      tokens_per_s: null,
      gflops: null,
      dispatches_per_step: null,
      submits_per_step: null,
      readbacks_per_step: null,
      bytes: backend.bytesByRole(),
    };
  }
  for (let w = 0; w < Math.max(1, warmup); w++) {
    trainer.step(micro);
    await backend.read(optimizer.gradNormSq);
  }
  const before = backend.counters();
  const start = performance.now();
  for (let s = 0; s < steps; s++) trainer.step(micro);
  await backend.read(optimizer.gradNormSq); // waits for the device
  const seconds = (performance.now() - start) / 1000 / steps;
  const after = backend.counters();
  const result: StepBenchResult = {
    ...shape,
    seconds_per_step: seconds,
    tokens_per_s: tokens / seconds,
    gflops: 6 * params * tokens / seconds / 1e9,
    dispatches_per_step: (after.dispatches - before.dispatches) / steps,
    submits_per_step: (after.submits - before.submits - 1) / steps,
    readbacks_per_step: (after.readbacks - before.readbacks - 1) / steps,
    bytes: backend.bytesByRole(),
  };
  return result;
}
