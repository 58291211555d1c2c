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
  AttentionBackwardArgs,
  AttentionForwardArgs,
  AttentionShape,
  Backend,
  DecodeAttentionArgs,
  DecodeRows,
  DropoutArgs,
  DType,
  FDivergenceType,
  KtoLossArgs,
  KtoLossSpec,
  KtoLossType,
  KtoResult,
  KvCacheWriteArgs,
  LmHeadBackwardArgs,
  LmHeadForwardArgs,
  LmHeadPlan,
  MatmulOptions,
  Ops,
  OptimizerHyper,
  OptimizerStepArgs,
  PreferenceLossArgs,
  PreferenceLossResult,
  PreferenceLossSpec,
  PreferenceLossType,
  RmsnormBackwardArgs,
  RmsnormForwardArgs,
  Role,
  RopeArgs,
  RopeAtArgs,
  SampleSettings,
  Tensor,
  TokenCounts,
  WinRates,
} from "./src/backend/mod.ts";
/** Metric names of the preference losses (TRL's). */
export { PREFERENCE_METRICS } from "./src/backend/mod.ts";
/** The WebGPU backend (WGSL kernels). */
export { GpuBackend } from "./src/gpu/backend.ts";
/** The plain TypeScript reference backend (float32 or float64). */
export { CpuBackend } from "./src/cpu/backend.ts";
/** Adapter discovery: `requestDevice` asks for the adapter's maximum limits. */
export { type GpuDevice, hasWebGpu, NoAdapterError, requestDevice } from "./src/gpu/device.ts";
/** `--device webgpu|cpu|auto`. */
export { createBackend, type DeviceChoice } from "./src/pipeline/device.ts";

/** HF `config.json` <-> model config, and the HF parameter table. */
export {
  type Architecture,
  ConfigError,
  configFromHf,
  type ConfigFromHfOptions,
  configToHf,
  type ConfigToHfOptions,
  type ModelConfig,
  parameterCount,
  type ParameterShape,
  parameterShapes,
} from "./src/model/config.ts";
/** The Llama-family model: forward to completion log-probs, backward. */
export {
  type ForwardOptions,
  LlamaModel,
  type LlamaModelOptions,
  type SequenceScorer,
  type TrainableParams,
} from "./src/model/llama.ts";
export {
  LORA_DEFAULTS,
  LORA_MODULES,
  loraLayout,
  type LoraModule,
  type LoraOptions,
  loraParameterCount,
  resolveTargetModules,
} from "./src/model/lora.ts";
export { type AdapterChoice, LoraAdapters } from "./src/model/lora_adapters.ts";
export {
  type LoadedAdapter,
  mergeAdapter,
  PeftAdapterError,
  readAdapter,
  saveAdapter,
} from "./src/model/lora_io.ts";
export type { Activations, LayerActivations } from "./src/model/activations.ts";
/** Parameter arenas with HF names. */
export {
  type ArenaSegment,
  ParamArena,
  type ParamLayout,
  paramLayout,
  type ParamSlot,
} from "./src/model/params.ts";
/** Seeded HF-style initialisation. */
export { initWeights } from "./src/model/init.ts";

/** File access that a browser can supply, and an in-memory store. */
export { FileNotFoundError, type FileStore, joinPath } from "./src/io/fs.ts";
export { MemoryFileStore } from "./src/io/memory_fs.ts";
/** safetensors and HF checkpoint folders. */
export {
  readSafetensors,
  type ReadSafetensorsOptions,
  type SafetensorsEntry,
  SafetensorsError,
  type TensorData,
  type WritableDtype,
  writeSafetensors,
  type WriteSafetensorsOptions,
} from "./src/io/safetensors.ts";
export {
  type Checkpoint,
  CheckpointError,
  type HeaderTensor,
  loadCheckpoint,
  type LoadCheckpointOptions,
  saveCheckpoint,
  type SaveCheckpointOptions,
} from "./src/io/checkpoint.ts";
/** SHA-256 fingerprints. */
export { fingerprintJson, sha256Hex, stableStringify } from "./src/io/hash.ts";

/** Optimizers on the device, HF learning-rate schedules, the training step. */
export { DeviceOptimizer, type OptimizerOptions } from "./src/train/optimizer.ts";
export { learningRate, type ScheduleName, type ScheduleOptions } from "./src/train/schedule.ts";
export {
  type KtoObjective,
  type MicroBatch,
  type NllObjective,
  type Objective,
  type PreferenceObjective,
  type StepMetrics,
  Trainer,
} from "./src/train/trainer.ts";
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
export { type KtoOptions, runKto } from "./src/pipeline/kto.ts";
export { type PipelineHooks, type PipelineSpec, runPipeline } from "./src/pipeline/pipeline.ts";
export { type FrontierMethod, type FrontierOptions, runFrontier } from "./src/pipeline/frontier.ts";
export { type EvalStageOptions, runEvalStage } from "./src/pipeline/eval_stage.ts";
export type { LoopOptions, TrainStageOptions } from "./src/pipeline/loop.ts";
export type { PeftOptions } from "./src/pipeline/peft.ts";
export type { FrozenDtypeChoice, HostWeights } from "./src/model/model_folder.ts";
export type { StageHooks } from "./src/pipeline/stage.ts";
export type { StageResult } from "./src/pipeline/manifest.ts";

/** Sampling on the device, evaluation, reports. */
export { generate, type GenerateOptions, type Generation, Sampler } from "./src/eval/sample.ts";
export {
  type CompletionSequence,
  sequenceKl,
  type SequenceKlOptions,
  type SequenceKlResult,
} from "./src/eval/kl.ts";
export {
  type EvalPrompt,
  type EvalSample,
  evaluateModel,
  type EvaluateOptions,
  type ModelEvaluation,
  type PairMetrics,
  type Reward,
} from "./src/eval/evaluate.ts";
export type { Comparison, FolderEvalOptions } from "./src/eval/compare.ts";
export { sentimentReward } from "./src/world/reward.ts";
export {
  type BatchLayout,
  type EvalTable,
  type FrontierPoint,
  type MetricRow,
  renderReport,
  type ReportInput,
  type ReportSample,
} from "./src/eval/report.ts";

/** The reference log-prob cache format. */
export {
  type CacheColumn,
  CacheError,
  type CacheHeader,
  type CacheSection,
  decodeCache,
  encodeCache,
  mergeCaches,
  type ReferenceCache,
} from "./src/cache/reference_cache.ts";

/** Datasets in TRL's formats, validation, tokenization, collation. */
export * from "./src/data/mod.ts";
