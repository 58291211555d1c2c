/**
 * The memory plan of a run: the device bytes each role will hold (the same roles the backends
 * count in `bytesByRole()` and the bench reports), computed from the model's shape, the batch
 * and the run's options before anything is allocated, so a run that cannot fit is refused up
 * front instead of failing mid-run.
 *
 * Every buffer the training path allocates is listed here with its role and size, in the order
 * of the code that allocates it (src/model/llama.ts, src/model/activations.ts,
 * src/train/optimizer.ts, src/train/trainer.ts); tests compare the totals with a real
 * allocation on both backends, so the formula cannot drift from the code.
 *
 * LoRA (adapters r × (in + out) per target module, trainable; the base frozen) and gradient
 * checkpointing (every layer's input kept, one layer's other tensors shared and recomputed) are
 * counted by formula.
 *
 * @module
 */

import type { Ops, Role } from "../backend/mod.ts";
import { HYPER_SLOTS, normScratchSlots, PREFERENCE_METRICS } from "../backend/mod.ts";
import type { ModelConfig } from "../model/config.ts";
import { DEFAULT_LOGITS_BUDGET, logitsChunkRows } from "../model/activations.ts";
import { halfLayouts, type ParamLayout, paramLayout } from "../model/params.ts";
import { LORA_DEFAULTS, loraLayout, moduleShape, resolveTargetModules } from "../model/lora.ts";

/** The precision a frozen weight is held in on the device (2 bytes for bf16 and f16). */
export type WeightDtype = "f32" | "bf16" | "f16";

/** Bytes per element of each weight precision. */
export const WEIGHT_DTYPE_BYTES: Record<WeightDtype, number> = { f32: 4, bf16: 2, f16: 2 };

/** LoRA as the plan needs it: the rank, the wrapped modules, whether dropout keeps a mask. */
export interface PlanLora {
  /** Rank r of A (r, in) and B (out, r). */
  r: number;
  /** Wrapped modules of every layer (PEFT names: q_proj, ..., down_proj). */
  targetModules: readonly string[];
  /** `lora_dropout`: above 0 the dropped adapter input (N, in) is kept for the backward. */
  dropout: number;
  /**
   * The run starts from an existing adapter (`--adapter`): its frozen copy is kept as the
   * reference adapter (TRL's "ref" adapter), a second adapter arena. @default false
   */
  referenceAdapter?: boolean;
}

/** What a run allocates, as far as memory goes. */
export interface PlanInput {
  config: ModelConfig;
  /** Sequences per micro-batch on the device (2 × pairs for DPO and KTO, examples for SFT). */
  rows: number;
  /** Longest sequence (prompt + completion tokens). */
  seqLen: number;
  /** A training run (model, gradients, optimizer, trainer) or a forward-only one (precompute). */
  train: boolean;
  /** A frozen second model of the same shape runs beside the policy (DPO without a cache). */
  liveReference?: boolean;
  /**
   * The live reference is a model folder of its own (`--ref-model`), held beside a LoRA policy
   * too; without it a LoRA policy's live reference is its own base with the adapters off.
   * @default false
   */
  separateReference?: boolean;
  /** Precision of frozen weights on the device (LoRA base, forward-only model). @default "f32" */
  frozenDtype?: WeightDtype;
  /**
   * Precision of the live reference's weights: its own checkpoint's under `--frozen-dtype auto`
   * (a `--ref-model` may be stored otherwise than the policy), f32 under `f32`.
   * @default frozenDtype
   */
  referenceDtype?: WeightDtype;
  /** LoRA adapters: the base is frozen, only the adapters train. */
  lora?: PlanLora;
  /** Gradient checkpointing: every layer's input kept, the rest of one layer recomputed. */
  gradientCheckpointing?: boolean;
  /** Logit elements held at once (LlamaModelOptions.logitsBudget). @default 4194304 */
  logitsBudget?: number;
}

/** How a backend rounds an allocation, and the scratch its kernels add. */
export interface PlanGranularity {
  /** Every allocation is rounded up to this many bytes (256 on WebGPU, 1 on the CPU). */
  alignment: number;
  /** Smallest allocation in bytes (4 on WebGPU, 0 on the CPU). */
  minBytes: number;
  /** Bytes per f32 element (4; 8 for the CPU's f64 mode). */
  floatBytes: number;
  /**
   * The backend widens half-precision frozen weights up front (the CPU): they take floatBytes.
   * @default false (WebGPU holds them at 2 bytes per element)
   */
  widensHalf?: boolean;
  /** Extra activation elements the backward's kernels allocate for N rows of width C. */
  backwardScratch?: (N: number, C: number) => number;
  /** The backend's fused LM head plan (`Ops.lmHeadPlan`), where it runs one. */
  lmHeadPlan?: Ops["lmHeadPlan"];
}

/** A tight byte count, as the CPU backend in f32 holds it. */
export const EXACT_GRANULARITY: PlanGranularity = { alignment: 1, minBytes: 0, floatBytes: 4 };

/** One planned allocation. */
export interface PlannedBuffer {
  role: Role;
  /** What it holds, e.g. `policy parameters`, `layer activations q`. */
  name: string;
  bytes: number;
  /**
   * For an arena (parameters, gradients, moments): its largest tensor, padding included. An arena
   * spans several buffers where one cannot hold it (src/model/params.ts); a tensor never does.
   */
  largestTensor?: { name: string; bytes: number };
}

/** The plan: bytes by role, the split of the parameters, the largest single tensor. */
export interface MemoryPlan {
  /** Device bytes by role, named as `bytesByRole()` and the bench's rows name them. */
  bytes: Record<Role, number>;
  /** The `parameters` role split into frozen and trainable weights. */
  weights: { frozen: number; trainable: number };
  /** Sum over the roles. */
  total: number;
  /** Sum over the roles but activations (the part that does not grow with the batch). */
  totalWithoutActivations: number;
  /**
   * The largest single tensor, the one that must fit one buffer (`maxBufferSize`): an arena counts
   * by its largest tensor (named `arena: tensor`), any other buffer whole. Larger than one binding
   * it is bound in pieces (src/gpu/split.ts).
   */
  largest: PlannedBuffer;
  /** Every allocation. */
  buffers: PlannedBuffer[];
}

/** Adapter arena elements: the adapters' own layout (src/model/lora.ts), slots aligned. */
export function loraArenaElements(config: ModelConfig, lora: PlanLora): number {
  return loraArenaLayout(config, lora).total;
}

function loraArenaLayout(config: ModelConfig, lora: PlanLora): ParamLayout {
  const targetModules = resolveTargetModules(lora.targetModules);
  return loraLayout(config, { ...LORA_DEFAULTS, r: lora.r, targetModules });
}

/** The largest tensor of `layout` and its elements with the padding after it (its arena share). */
export function largestSlot(layout: ParamLayout): { name: string; elements: number } {
  let best = { name: "", elements: 0 };
  layout.slots.forEach((slot, i) => {
    const elements = (layout.slots[i + 1]?.offset ?? layout.total) - slot.offset;
    if (elements > best.elements) best = { name: slot.name, elements };
  });
  return best;
}

/** Plans the device memory of a run; pure arithmetic, nothing is allocated. */
export function planMemory(
  input: PlanInput,
  granularity: PlanGranularity = EXACT_GRANULARITY,
): MemoryPlan {
  const { config, rows: B, seqLen: T, train } = input;
  const { alignment, minBytes, floatBytes } = granularity;
  const isHalf = (d?: WeightDtype) => d === "bf16" || d === "f16";
  const buffers: PlannedBuffer[] = [];
  const round = (elements: number, bytesPer: number) =>
    Math.ceil(Math.max(minBytes, elements * bytesPer) / alignment) * alignment;
  const add = (role: Role, name: string, elements: number, bytesPer = floatBytes) => {
    buffers.push({ role, name, bytes: round(elements, bytesPer) });
  };
  // An arena of `layout`: its bytes, and its largest tensor for the one-buffer limit.
  const addArena = (role: Role, name: string, layout: ParamLayout, bytesPer = floatBytes) => {
    const largest = largestSlot(layout);
    buffers.push({
      role,
      name,
      bytes: round(layout.total, bytesPer),
      largestTensor: { name: largest.name, bytes: round(largest.elements, bytesPer) },
    });
  };
  const baseLayout = paramLayout(config);
  // LoRA on the policy (a forward-only model: its frozen adapter, e.g. precompute --adapter).
  const lora = input.lora;
  const adapterLayout = lora ? loraArenaLayout(config, lora) : undefined;
  const trainableLayout = adapterLayout ?? baseLayout;
  const trainableElements = trainableLayout.total;

  // One model: LlamaModel's parameter arena, gradients, activations and rotary tables; `adapted`:
  // with the run's LoRA adapters (a separate live reference has none).
  const model = (who: string, trainable: boolean, dtype = input.frozenDtype, adapted = true) => {
    const adapters = adapted ? lora : undefined;
    if (trainable && !lora) addArena("parameters", `${who} parameters`, baseLayout);
    else if (!isHalf(dtype)) addArena("parameters", `${who} parameters (frozen)`, baseLayout);
    else {
      // ParamArena with half frozen weights: the matrices at 2 bytes (128-element aligned), the
      // 1-D norms and biases widened to f32 in an arena of their own (src/model/params.ts).
      const { matrices, vectors } = halfLayouts(config);
      const bytesPer = granularity.widensHalf ? floatBytes : WEIGHT_DTYPE_BYTES[dtype!];
      addArena("parameters", `${who} parameters (frozen)`, matrices, bytesPer);
      addArena("parameters", `${who} norms and biases (frozen)`, vectors);
    }
    if (adapters && adapterLayout) {
      const frozen = trainable ? "" : " (frozen)";
      addArena("parameters", `${who} LoRA adapters${frozen}`, adapterLayout);
      if (adapters.referenceAdapter) {
        addArena("parameters", `${who} reference adapter (frozen)`, adapterLayout);
      }
    }
    if (trainable) addArena("gradients", `${who} gradients`, trainableLayout);
    activations(who, trainable, adapters);
    const half = T * (config.headDim / 2);
    add("activations", `${who} rope cos`, half);
    add("activations", `${who} rope sin`, half);
  };

  // allocActivations, tensor for tensor.
  const activations = (who: string, trainable: boolean, adapters?: PlanLora) => {
    const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
    const V = config.vocabSize, L = config.numLayers, N = B * T;
    const a = (name: string, n: number) => add("activations", `${who} ${name}`, n);
    const layer = (l: string) => {
      for (
        const [name, n] of [
          ["ln1", N * C],
          ["rstd1", N],
          ["q", N * H * D],
          ["k", N * Hkv * D],
          ["v", N * Hkv * D],
          ["stats", B * H * T * 2],
          ["attn", N * H * D],
          ["mid", N * C],
          ["ln2", N * C],
          ["rstd2", N],
          ["gate", N * F],
          ["up", N * F],
          ["act", N * F],
        ] as const
      ) a(`layer ${l} ${name}`, n);
    };
    const d = (name: string, n: number) => a(name, trainable ? n : 1);
    const checkpointing = trainable && Boolean(input.gradientCheckpointing);
    if (trainable && !checkpointing) {
      for (let l = 0; l < L; l++) {
        a(`layer ${l} input`, N * C);
        layer(String(l));
      }
    } else if (checkpointing) {
      a("layer 0 input", N * C);
      layer("shared");
      for (let l = 1; l < L; l++) a(`layer ${l} input`, N * C);
    } else {
      a("layer input", N * C);
      layer("shared");
      a("layer input (other)", N * C);
    }
    if (adapters) {
      // LoraAdapters (src/model/lora_adapters.ts): x A^T (N, r) per layer and wrapped module for
      // B's gradient (a frozen model's layers share layer 0's), the (N, r) hidden, the dropped
      // input (N, widest in) when dropout is on, the backward's d(dropped input) and d(hidden),
      // the dropout key; and the frozen norms' discarded weight gradient (LlamaModel).
      const modules = resolveTargetModules(adapters.targetModules);
      const widest = Math.max(...modules.map((m) => moduleShape(config, m).in));
      const r = adapters.r;
      for (let l = 0; l < (trainable ? L : 1); l++) {
        for (const m of modules) a(`layer ${l} ${m} lora xA`, N * r);
      }
      a("lora hidden", N * r);
      a("lora dropped input", adapters.dropout > 0 ? N * widest : 1);
      d("lora d(dropped input)", N * widest);
      d("lora d(hidden)", N * r);
      add("inputs", `${who} lora dropout key`, 1, 4);
      if (trainable) a("lora norm weight scratch", C);
    }
    a("final", N * C);
    a("lnf", N * C);
    a("rstdf", N);
    const budget = input.logitsBudget ?? DEFAULT_LOGITS_BUDGET;
    const fused = granularity.lmHeadPlan?.(N, V, C, budget);
    if (fused) {
      a("lm head scratch", trainable ? fused.scratch.trainable : fused.scratch.frozen);
      a("lm head stats", N * 3);
    } else {
      a("logits chunk", logitsChunkRows(N, V, budget) * V);
    }
    a("lse", N);
    a("tokenLogp", N);
    d("rowGrad", N);
    a("seqLogps", B);
    d("seqGrad", B);
    add("inputs", `${who} ids`, N, 4);
    add("inputs", `${who} targets`, N, 4);
    add("inputs", `${who} order`, trainable ? N : 1, 4);
    add("inputs", `${who} offsets`, trainable ? V + 1 : 1, 4);
    for (
      const [name, n] of [
        ["dRes", N * C],
        ["dLn", N * C],
        ["dAttn", N * H * D],
        ["dq", N * H * D],
        ["dk", N * Hkv * D],
        ["dv", N * Hkv * D],
        ["rowDot", B * H * T],
        ["dAct", N * F],
        ["dGate", N * F],
        ["dUp", N * F],
      ] as const
    ) d(name, n);
  };

  model(train ? "policy" : "model", train);
  // With LoRA the live reference is the base with the adapters off: no second copy (TRL).
  if (train && input.liveReference && (!lora || input.separateReference)) {
    model("reference", false, input.referenceDtype ?? input.frozenDtype, false);
  }
  if (train) {
    // DeviceOptimizer: two moment arenas, the hyper-parameter block, the norm and its partials.
    addArena("optimizer", "first moments", trainableLayout);
    addArena("optimizer", "second moments", trainableLayout);
    add("optimizer", "hyper-parameters", HYPER_SLOTS);
    add("optimizer", "gradient norm", 1);
    add("optimizer", "norm partials", normScratchSlots(trainableElements));
    // Trainer: metrics and per-row loss inputs.
    add("activations", "trainer metrics", PREFERENCE_METRICS.length);
    for (const [name, n] of [["weights", B], ["reference", 2 * B], ["tokens", B]] as const) {
      add("activations", `trainer ${name}`, n);
    }
    add("activations", "trainer labels", B);
    add("activations", "trainer klPolicy", B);
    add("activations", "trainer winRates", B);
    const scratch = granularity.backwardScratch?.(B * T, config.hiddenSize) ?? 0;
    if (scratch > 0) add("activations", "backward scratch", scratch);
  }

  const bytes: Record<Role, number> = {
    parameters: 0,
    gradients: 0,
    optimizer: 0,
    activations: 0,
    inputs: 0,
  };
  for (const b of buffers) bytes[b.role] += b.bytes;
  const frozen = buffers.filter((b) => b.role === "parameters" && b.name.endsWith("(frozen)"))
    .reduce((s, b) => s + b.bytes, 0);
  const total = Object.values(bytes).reduce((s, v) => s + v, 0);
  return {
    bytes,
    weights: { frozen, trainable: bytes.parameters - frozen },
    total,
    totalWithoutActivations: total - bytes.activations,
    largest: buffers.map((b): PlannedBuffer =>
      b.largestTensor
        ? { role: b.role, name: `${b.name}: ${b.largestTensor.name}`, bytes: b.largestTensor.bytes }
        : b
    ).reduce((m, b) => b.bytes > m.bytes ? b : m),
    buffers,
  };
}
