/**
 * The whole pipeline as one library call: SFT from a base model, the reference cache computed
 * with the SFT model, DPO from the SFT model against that cache. Outputs go under one run folder
 * (`<runDir>/sft`, `<runDir>/ref_cache`, `<runDir>/dpo`); a stage whose manifest says it is up to
 * date with the same inputs and options is skipped.
 *
 * @module
 */

import type { Backend, PreferenceLossType } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import type { OptimizerOptions } from "../train/optimizer.ts";
import type { TokenOptions } from "../data/prepare.ts";
import type { Reward } from "../eval/evaluate.ts";
import { runDpo } from "./dpo.ts";
import type { StageHooks } from "./stage.ts";
import type { LoopOptions } from "./loop.ts";
import type { StageResult } from "./manifest.ts";
import { runPrecompute } from "./precompute.ts";
import { runSft } from "./sft.ts";
import { runEvalStage } from "./eval_stage.ts";

/** What the pipeline runs on and how. */
export interface PipelineSpec {
  /** Base model folder (with tokenizer files). */
  baseModel: string;
  /** SFT dataset. */
  sftData: string;
  /** Held-out SFT dataset. */
  sftEvalData?: string;
  /** Preference pairs. */
  preferenceData: string;
  /** Held-out preference pairs. */
  preferenceEvalData?: string;
  /** Run folder, e.g. `runs/default`. */
  runDir: string;
  /** Options that change token ids. */
  tokenOptions?: TokenOptions;
  /** The SFT stage's optimizer and loop. */
  sft: { optimizer: OptimizerOptions; loop: LoopOptions };
  /** The DPO stage's optimizer, loop and loss. */
  dpo: {
    optimizer: OptimizerOptions;
    loop: LoopOptions;
    beta: number;
    lossType?: PreferenceLossType;
    labelSmoothing?: number;
  };
  /** Held-out prompts (JSONL with "prompt") for the final evaluation; none = no eval stage. */
  evalPrompts?: string;
  /** Sampling of the final evaluation. */
  eval?: { seeds?: number[]; maxNewTokens?: number; batchSize?: number };
  /** The ground-truth reward the evaluation measures; needed with `evalPrompts`. */
  reward?: Reward;
  /** Redo every stage. @default false */
  force?: boolean;
}

/** Folders of a run. */
export function runPaths(runDir: string) {
  return {
    sft: joinPath(runDir, "sft"),
    refCache: joinPath(runDir, "ref_cache", "ref_cache.bin"),
    dpo: joinPath(runDir, "dpo"),
    eval: joinPath(runDir, "eval"),
  };
}

/** Per-stage hooks and announcements. */
export interface PipelineHooks {
  /** The hooks of stage `name`. */
  stage(name: "sft" | "precompute" | "dpo" | "eval"): StageHooks;
  /** A stage starts, was skipped, or finished in `seconds`. */
  onStage?: (name: string, event: "start" | "skipped" | "done", seconds?: number) => void;
}

/** Wraps a stage in its start, skipped and done announcements (`onStage`). */
export function announced(hooks: PipelineHooks) {
  return async <T extends { skipped: boolean }>(name: string, fn: () => Promise<T>) => {
    hooks.onStage?.(name, "start");
    const start = performance.now();
    const result = await fn();
    hooks.onStage?.(name, result.skipped ? "skipped" : "done", (performance.now() - start) / 1000);
    return result;
  };
}

/**
 * The pipeline's first two stages: SFT of the base model, then the SFT model (the reference)
 * scores the preference pairs into the run's cache. DPO, the frontier and the length experiment
 * all start from here.
 */
export async function runSftAndReference(
  store: FileStore,
  backend: Backend,
  spec: PipelineSpec,
  hooks: PipelineHooks,
): Promise<{ sft: StageResult; precompute: { skipped: boolean } }> {
  const paths = runPaths(spec.runDir);
  const timed = announced(hooks);
  const sft = await timed("sft", () =>
    runSft(store, backend, {
      model: spec.baseModel,
      data: { path: spec.sftData },
      evalData: spec.sftEvalData,
      outputDir: paths.sft,
      tokenOptions: spec.tokenOptions,
      optimizer: spec.sft.optimizer,
      loop: spec.sft.loop,
      force: spec.force,
      // The run folder belongs to the pipeline: a changed setting redoes the stage in place.
      overwriteOutputDir: true,
    }, hooks.stage("sft")));
  // A redone SFT changes the reference, and the fingerprints carry that forward.
  const precompute = await timed("precompute", () =>
    runPrecompute(store, backend, {
      model: paths.sft,
      data: { path: spec.preferenceData },
      evalData: spec.preferenceEvalData ? { path: spec.preferenceEvalData } : undefined,
      tokenOptions: spec.tokenOptions,
      output: paths.refCache,
      force: spec.force,
    }, hooks.stage("precompute")));
  return { sft, precompute };
}

/** Runs SFT -> precompute -> DPO; returns each stage's result. */
export async function runPipeline(
  store: FileStore,
  backend: Backend,
  spec: PipelineSpec,
  hooks: PipelineHooks,
): Promise<{
  sft: StageResult;
  precompute: { skipped: boolean };
  dpo: StageResult;
  eval?: Awaited<ReturnType<typeof runEvalStage>>;
}> {
  const paths = runPaths(spec.runDir);
  const timed = announced(hooks);
  const { sft, precompute } = await runSftAndReference(store, backend, spec, hooks);
  const dpo = await timed("dpo", () =>
    runDpo(store, backend, {
      model: paths.sft,
      data: { path: spec.preferenceData },
      evalData: spec.preferenceEvalData,
      refCache: paths.refCache,
      outputDir: paths.dpo,
      tokenOptions: spec.tokenOptions,
      beta: spec.dpo.beta,
      lossType: spec.dpo.lossType,
      labelSmoothing: spec.dpo.labelSmoothing,
      optimizer: spec.dpo.optimizer,
      loop: spec.dpo.loop,
      force: spec.force,
      overwriteOutputDir: true,
    }, hooks.stage("dpo")));
  if (!spec.evalPrompts) return { sft, precompute, dpo };
  if (!spec.reward) throw new RangeError("the pipeline's evalPrompts need a reward to measure");
  const reward = spec.reward;
  const evalHooks = hooks.stage("eval");
  const evaluation = await timed("eval", () =>
    runEvalStage(store, backend, {
      policyDir: paths.dpo,
      referenceDir: paths.sft,
      outputDir: paths.eval,
      prompts: spec.evalPrompts!,
      pairsFile: spec.preferenceEvalData,
      tokenOptions: spec.tokenOptions,
      beta: spec.dpo.beta,
      reward,
      ...spec.eval,
      force: spec.force,
      onProgress: (_stage, done, total) => evalHooks.onProgress?.(done, total),
    }));
  return { sft, precompute, dpo, eval: evaluation };
}
