/**
 * DPO on WebGPU: the public library. Re-exports only; nothing reachable from here uses `Deno.*`
 * or `node:*`, so it runs in Deno, browsers and edge workers with WebGPU.
 *
 * @example
 * ```ts
 * import { configFromHf, createBackend, LlamaModel } from "./mod.ts";
 * const backend = await createBackend("auto");
 * const model = new LlamaModel(backend, configFromHf(configJson), { maxBatch: 8, maxSeqLen: 128 });
 * ```
 *
 * @module
 */

/** The backend interface the model, losses and optimizers are written against. */
export type {
  Backend,
  DType,
  MatmulOptions,
  Ops,
  OptimizerHyper,
  PreferenceLossType,
  Role,
  Tensor,
} from "./src/backend/mod.ts";
/** Metric names of the preference losses (TRL's). */
export { PREFERENCE_METRICS } from "./src/backend/mod.ts";
/** The WebGPU backend (WGSL kernels). */
export { GpuBackend } from "./src/gpu/backend.ts";
/** The plain TypeScript reference backend (float32 or float64). */
export { CpuBackend } from "./src/cpu/backend.ts";
/** Adapter discovery: `requestDevice` asks for the adapter's maximum limits. */
export { hasWebGpu, NoAdapterError, requestDevice } from "./src/gpu/device.ts";
/** `--device webgpu|cpu|auto`. */
export { createBackend, type DeviceChoice } from "./src/pipeline/device.ts";

/** HF `config.json` <-> model config, and the HF parameter table. */
export {
  ConfigError,
  configFromHf,
  configToHf,
  type ModelConfig,
  parameterCount,
  parameterShapes,
} from "./src/model/config.ts";
/** The Llama-family model: forward to completion log-probs, backward. */
export { LlamaModel, type LlamaModelOptions } from "./src/model/llama.ts";
/** Parameter arenas with HF names. */
export { ParamArena, type ParamLayout, paramLayout } from "./src/model/params.ts";
/** Seeded HF-style initialisation. */
export { initWeights } from "./src/model/init.ts";

/** File access that a browser can supply, and an in-memory store. */
export { FileNotFoundError, type FileStore, joinPath } from "./src/io/fs.ts";
export { MemoryFileStore } from "./src/io/memory_fs.ts";
/** safetensors and HF checkpoint folders. */
export { readSafetensors, SafetensorsError, writeSafetensors } from "./src/io/safetensors.ts";
export {
  type Checkpoint,
  CheckpointError,
  loadCheckpoint,
  saveCheckpoint,
} from "./src/io/checkpoint.ts";
/** SHA-256 fingerprints. */
export { fingerprintJson, sha256Hex, stableStringify } from "./src/io/hash.ts";

/** Optimizers on the device, HF learning-rate schedules, the training step. */
export { DeviceOptimizer, type OptimizerOptions } from "./src/train/optimizer.ts";
export { learningRate } from "./src/train/schedule.ts";
export { type MicroBatch, type Objective, Trainer } from "./src/train/trainer.ts";
/** Preference losses as pure functions of per-sequence log-probs (TRL's loss types, KTO). */
export {
  needsReference,
  preferenceLoss,
  type PreferenceLossOptions,
  preferenceMetrics,
  resolveLossSpec,
} from "./src/backend/losses.ts";
export { ktoLoss, ktoWeightWarning, resolveKtoSpec } from "./src/backend/kto_loss.ts";
export { KTO_METRICS, PREFERENCE_LOSS_TYPES } from "./src/backend/mod.ts";

/** The stages as library functions (a browser page calls them with its own FileStore). */
export { runSft, type SftOptions } from "./src/pipeline/sft.ts";
export { type PrecomputeOptions, runPrecompute } from "./src/pipeline/precompute.ts";
export { type DpoOptions, runDpo } from "./src/pipeline/dpo.ts";
export { runKto } from "./src/pipeline/kto.ts";
export { type PipelineSpec, runPipeline } from "./src/pipeline/pipeline.ts";
export { runFrontier } from "./src/pipeline/frontier.ts";

/** Sampling on the device, evaluation, reports. */
export { generate, type GenerateOptions, Sampler } from "./src/eval/sample.ts";
export { sequenceKl } from "./src/eval/kl.ts";
export { evaluateModel, type ModelEvaluation } from "./src/eval/evaluate.ts";
export { sentimentReward } from "./src/world/reward.ts";
export { renderReport, type ReportInput } from "./src/eval/report.ts";

/** The reference log-prob cache format. */
export {
  CacheError,
  decodeCache,
  encodeCache,
  mergeCaches,
  type ReferenceCache,
} from "./src/cache/reference_cache.ts";

/** Datasets in TRL's formats, validation, tokenization, collation. */
export * from "./src/data/mod.ts";
