/**
 * The training loop of SFT and DPO, with HF Trainer semantics: `batchSize` examples per micro-batch,
 * `gradientAccumulationSteps` per optimizer step, a seeded batch order that is a pure function of
 * the step (a resumed run sees the batches the uninterrupted run would), metrics every
 * `loggingSteps`, evaluation every `evalSteps`, checkpoints every `saveSteps` holding all a
 * bit-identical resume needs; at the end the model, metrics.jsonl and report.html.
 *
 * @module
 */

import { BatchSampler, type SplitSpec, type TokenOptions } from "../data/mod.ts";
import { type FileStore, joinPath } from "../io/fs.ts";
import { killPoint } from "../io/kill_point.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { DeviceOptimizer, OptimizerOptions } from "../train/optimizer.ts";
import type { MicroBatch, Trainer } from "../train/trainer.ts";
import { renderReport } from "../eval/report.ts";
import { type BatchLayout, partialBatchNote } from "../eval/batches.ts";
import { NonFiniteError } from "../model/params.ts";
import { checkpointFingerprint, TRAINER_STATE } from "./stage.ts";
import { type AdapterSave, type PeftOptions, restoreTrained, saveTrained } from "./peft.ts";

/** Loop options (TRL/HF TrainingArguments names). */
export interface LoopOptions {
  /** Examples (pairs for DPO) per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step. @default 1 */
  gradientAccumulationSteps?: number;
  /** Optimizer steps; overrides epochs when > 0. @default -1 */
  maxSteps?: number;
  /** Epochs over the data (when `maxSteps` is not > 0). @default 1 */
  numTrainEpochs?: number;
  /** Log metrics every N optimizer steps. @default 10 */
  loggingSteps?: number;
  /** 0 = evaluate only at the end. @default 0 */
  evalSteps?: number;
  /** 0 = no intermediate checkpoints. @default 0 */
  saveSteps?: number;
  /** Seed of the batch order. @default 42 */
  seed?: number;
  /** Drop each epoch's last partial batch (TRL's `dataloader_drop_last`). @default false */
  dropLast?: boolean;
  /** Evaluate once before the first step too (TRL's `eval_on_start`). @default false */
  evalOnStart?: boolean;
  /**
   * Recompute each layer's activations in the backward instead of keeping them (TRL's
   * `gradient_checkpointing`); the result is bit-identical, the activation memory smaller.
   * @default false
   */
  gradientCheckpointing?: boolean;
}

/** What every training stage (SFT, DPO, KTO) takes besides its objective's own options. */
export interface TrainStageOptions {
  /** The starting model (HF folder with tokenizer files). */
  model: string;
  /** The training data. */
  data: SplitSpec;
  /** Held-out rows: another file; or use `evalFraction`. */
  evalData?: string;
  /** Fraction of `data` held out for evaluation. @default 0 */
  evalFraction?: number;
  /** Where the model, checkpoints, metrics.jsonl, report.html and manifest.json go. */
  outputDir: string;
  /** Options that change token ids. */
  tokenOptions?: TokenOptions;
  /** The optimizer and its schedule. */
  optimizer?: OptimizerOptions;
  /** Batching, steps, logging, evaluation and checkpoints. */
  loop: LoopOptions;
  /** Continue from the newest checkpoint in outputDir. */
  resume?: boolean;
  /** LoRA adapters on the frozen base (`--use-peft`) instead of full fine-tuning. */
  peft?: PeftOptions;
  /** Redo the stage even when its outputs are up to date. @default false */
  force?: boolean;
  /** Clear another run's outputs from outputDir instead of refusing (`overwrite_output_dir`). */
  overwriteOutputDir?: boolean;
  /** `--max-memory`: device bytes the run may hold; the memory plan refuses more. */
  maxMemory?: number;
  /** `--frozen-dtype`: frozen weights in the checkpoint's dtype (auto) or f32; same results. */
  frozenDtype?: "auto" | "f32";
}

/** Resolved loop options. */
export type ResolvedLoop = Required<LoopOptions>;

/** Fills in the loop defaults. */
export function loopDefaults(o: LoopOptions): ResolvedLoop {
  return {
    batchSize: o.batchSize,
    gradientAccumulationSteps: o.gradientAccumulationSteps ?? 1,
    maxSteps: o.maxSteps ?? -1,
    numTrainEpochs: o.numTrainEpochs ?? 1,
    loggingSteps: o.loggingSteps ?? 10,
    evalSteps: o.evalSteps ?? 0,
    saveSteps: o.saveSteps ?? 0,
    seed: o.seed ?? 42,
    dropLast: o.dropLast ?? false,
    evalOnStart: o.evalOnStart ?? false,
    gradientCheckpointing: o.gradientCheckpointing ?? false,
  };
}

/** Optimizer steps a run takes over `examples`. */
export function totalSteps(examples: number, o: ResolvedLoop): number {
  if (o.maxSteps > 0) return o.maxSteps;
  const microPerEpoch = o.dropLast
    ? Math.floor(examples / o.batchSize)
    : Math.ceil(examples / o.batchSize);
  return Math.max(1, Math.ceil(o.numTrainEpochs * microPerEpoch / o.gradientAccumulationSteps));
}

/**
 * The batching of a run over `examples` (what the report and the manifest's `results.batches`
 * record, so a partial last batch is explained where its curve jumps).
 *
 * @param unit what an example is called ("pairs" for preference training). @default "examples"
 */
export function batchLayout(examples: number, o: ResolvedLoop, unit = "examples"): BatchLayout {
  return {
    examples,
    batchSize: o.batchSize,
    gradientAccumulationSteps: o.gradientAccumulationSteps,
    dropLast: o.dropLast,
    steps: totalSteps(examples, o),
    unit,
  };
}

/** What the loop calls back. */
export interface LoopHooks {
  /**
   * Builds the micro-batch of these example indices (async for a stage that makes its batches
   * on the fly, e.g. Online DPO samples them from the current policy).
   */
  microBatch(indices: number[]): MicroBatch | Promise<MicroBatch>;
  /** Eval metrics (without the `eval_` prefix); absent when there is no eval set. */
  evaluate?: () => Promise<Record<string, number>>;
  /** A metrics row was logged. */
  onLog?: (row: Record<string, number>) => void;
  /** An optimizer step finished (for progress bars). */
  onStep?: (step: number, total: number) => void;
  /** Human messages (checkpoint saved, resumed...). */
  log?: (message: string) => void;
  /** Stops training before its next step: nothing more is written (no final model). */
  signal?: AbortSignal;
}

/** Everything the loop needs. */
export interface LoopContext {
  store: FileStore;
  outputDir: string;
  model: LlamaModel;
  optimizer: DeviceOptimizer;
  trainer: Trainer;
  examples: number;
  options: ResolvedLoop;
  /** Tokenizer folder copied into checkpoints. */
  tokenizerFrom?: string;
  rawConfig?: Record<string, unknown>;
  /** Continue from the newest complete checkpoint in outputDir. */
  resume?: boolean;
  /** A LoRA model saves its adapter in PEFT's layout (and the merged model when asked). */
  adapter?: AdapterSave;
  /** Write report.html with the training curves. @default true */
  report?: boolean;
  /** What an example is called in messages and the report. @default "examples" */
  unit?: string;
  /**
   * The run's identity (its stage fingerprint): written into each checkpoint, and `resume` takes
   * only a checkpoint that carries it.
   */
  runFingerprint?: string;
}

const STATE_FILE = TRAINER_STATE;
const OPTIMIZER_FILE = "optimizer.safetensors";

/**
 * The newest checkpoint folder of `dir` that was written completely by the run `fingerprint`
 * (any run when it is undefined), or undefined; `log` hears which others were passed over, why.
 */
export async function newestCheckpoint(
  store: FileStore,
  dir: string,
  fingerprint?: string,
  log?: (message: string) => void,
): Promise<string | undefined> {
  if (!await store.exists(dir)) return undefined;
  const steps = (await store.list(dir))
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const step of steps) {
    const path = joinPath(dir, `checkpoint-${step}`);
    // trainer_state.json is written last: without it the checkpoint is incomplete.
    if (!await store.exists(joinPath(path, STATE_FILE))) {
      log?.(`passed over ${path}: incomplete (no ${STATE_FILE})`);
      continue;
    }
    if (fingerprint && await checkpointFingerprint(store, path) !== fingerprint) {
      log?.(`passed over ${path}: written by another run (other options, data or model)`);
      continue;
    }
    return path;
  }
  return undefined;
}

/** Runs the loop to the end; returns the logged rows (metrics.jsonl). */
export async function runLoop(
  ctx: LoopContext,
  hooks: LoopHooks,
): Promise<Array<Record<string, number>>> {
  const { store, outputDir, model, optimizer, trainer, options: o } = ctx;
  if (o.dropLast && ctx.examples < o.batchSize) {
    throw new RangeError(
      `dataloader_drop_last (--dataloader-drop-last): the ${ctx.examples} training ` +
        `${ctx.unit ?? "examples"} are fewer than one batch of ${o.batchSize}, so every batch ` +
        "would be dropped; lower --per-device-train-batch-size or leave --dataloader-drop-last off",
    );
  }
  const sampler = new BatchSampler(ctx.examples, {
    batchSize: o.batchSize,
    seed: o.seed,
    dropLast: o.dropLast,
  });
  const total = totalSteps(ctx.examples, o);
  const layout = batchLayout(ctx.examples, o, ctx.unit);
  const ga = o.gradientAccumulationSteps;
  let rows: Array<Record<string, number>> = [];
  let step = 0;
  if (ctx.resume) {
    const checkpoint = await newestCheckpoint(store, outputDir, ctx.runFingerprint, hooks.log);
    if (checkpoint) {
      const state = JSON.parse(await store.readText(joinPath(checkpoint, STATE_FILE)));
      step = state.global_step;
      rows = state.log_history;
      await restoreTrainingState(store, checkpoint, model, optimizer);
      optimizer.step = step;
      hooks.log?.(`resumed from ${checkpoint} at step ${step}`);
    } else hooks.log?.(`no checkpoint of this run in ${outputDir}: starting from step 0`);
  }
  const note = partialBatchNote(layout);
  if (note) hooks.log?.(note);
  const metricsPath = joinPath(outputDir, "metrics.jsonl");
  const writeRows = () =>
    store.writeFileAtomic(
      metricsPath,
      new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join("\n") + "\n"),
    );
  if (hooks.evaluate && o.evalOnStart && step === 0) {
    rows.push(evalRow(await hooks.evaluate(), 0, 0));
    hooks.onLog?.(rows.at(-1)!);
  }
  let tokens = 0;
  let windowStart = performance.now();
  while (step < total) {
    hooks.signal?.throwIfAborted();
    const micro: MicroBatch[] = [];
    for (let j = 0; j < ga; j++) {
      const m = await hooks.microBatch(sampler.batch(step * ga + j));
      tokens += m.batch.rows * m.batch.T;
      micro.push(m);
    }
    trainer.step(micro);
    step++;
    hooks.onStep?.(step, total);
    killPoint("train:after-step");
    const epoch = (step * ga) / sampler.batchesPerEpoch;
    if (step % o.loggingSteps === 0 || step === total) {
      const metrics = await trainer.readMetrics();
      const seconds = (performance.now() - windowStart) / 1000;
      const row = { ...metrics, epoch, step, tokens_per_s: tokens / seconds };
      rows.push(row);
      hooks.onLog?.(row);
      await stopIfNonFinite(row, step, o.loggingSteps, writeRows);
      tokens = 0;
      windowStart = performance.now();
    }
    if (hooks.evaluate && o.evalSteps > 0 && step % o.evalSteps === 0 && step !== total) {
      rows.push(evalRow(await hooks.evaluate(), epoch, step));
      hooks.onLog?.(rows.at(-1)!);
    }
    if (o.saveSteps > 0 && step % o.saveSteps === 0 && step !== total) {
      await writeRows();
      await saveTrainingCheckpoint(ctx, step, rows);
      hooks.log?.(`saved ${joinPath(outputDir, `checkpoint-${step}`)}`);
    }
  }
  if (hooks.evaluate) {
    rows.push(evalRow(await hooks.evaluate(), (step * ga) / sampler.batchesPerEpoch, step));
    hooks.onLog?.(rows.at(-1)!);
  }
  await saveTrained(store, outputDir, model, ctx);
  killPoint("final:after-weights");
  await writeRows();
  if (ctx.report ?? true) {
    // The training curves as a page (the pipeline's eval stage adds its table to it later).
    const html = await renderReport({
      title: `Training run: ${outputDir}`,
      metrics: rows,
      batches: layout,
    });
    await store.writeFileAtomic(joinPath(outputDir, "report.html"), new TextEncoder().encode(html));
  }
  return rows;
}

/**
 * The loss and the gradient norm come back at every logging step (the loss summed over the
 * steps since the last one): a non-finite value there stops the run before it writes anything
 * more. The metrics so far are kept for diagnosis; checkpoints already written stay as they are.
 */
async function stopIfNonFinite(
  row: Record<string, number>,
  step: number,
  loggingSteps: number,
  writeRows: () => Promise<void>,
): Promise<void> {
  for (const name of ["loss", "grad_norm"]) {
    const value = row[name];
    if (value === undefined || Number.isFinite(value)) continue;
    await writeRows();
    const from = Math.max(1, step - loggingSteps + 1);
    throw new NonFiniteError(
      `training diverged: ${name} is ${value} at step ${step} (in the steps ${from}..${step}); ` +
        "the run stopped without saving its weights (earlier checkpoints are kept). Lower " +
        "--learning-rate or set --max-grad-norm",
    );
  }
}

function evalRow(metrics: Record<string, number>, epoch: number, step: number) {
  const row: Record<string, number> = { epoch, step };
  for (const [k, v] of Object.entries(metrics)) row[`eval_${k}`] = v;
  return row;
}

/**
 * Writes `checkpoint-<step>/`: the policy in HF layout, the optimizer moments, and last
 * trainer_state.json (step and log history), which marks the checkpoint complete. Each file is
 * written atomically, so a run killed at any moment leaves the previous checkpoint intact.
 */
async function saveTrainingCheckpoint(
  ctx: LoopContext,
  step: number,
  rows: Array<Record<string, number>>,
): Promise<void> {
  const dir = joinPath(ctx.outputDir, `checkpoint-${step}`);
  // Checkpoints hold the adapter alone (the merge is for the final model).
  await saveTrained(ctx.store, dir, ctx.model, {
    ...ctx,
    adapter: ctx.adapter && { ...ctx.adapter, merge: false },
  });
  killPoint("checkpoint:mid-write");
  const arena = async (t: { readArena(): Promise<ArrayLike<number>> }) =>
    Float32Array.from(await t.readArena());
  const tensors = new Map([
    ["state1", await arena(ctx.optimizer.state1)],
    ["state2", await arena(ctx.optimizer.state2)],
  ].map(([name, data]) => [name as string, {
    shape: [(data as Float32Array).length],
    data: data as Float32Array,
  }]));
  await ctx.store.writeFileAtomic(joinPath(dir, OPTIMIZER_FILE), writeSafetensors(tensors));
  const state = {
    global_step: step,
    optimizer: ctx.optimizer.options.kind,
    run_fingerprint: ctx.runFingerprint,
    log_history: rows,
  };
  await ctx.store.writeFileAtomic(
    joinPath(dir, STATE_FILE),
    new TextEncoder().encode(JSON.stringify(state, null, 1) + "\n"),
  );
}

async function restoreTrainingState(
  store: FileStore,
  dir: string,
  model: LlamaModel,
  optimizer: DeviceOptimizer,
): Promise<void> {
  await restoreTrained(store, dir, model);
  const file = joinPath(dir, OPTIMIZER_FILE);
  const { tensors } = readSafetensors(await store.readFile(file), { file });
  for (
    const [name, arena] of [["state1", optimizer.state1], ["state2", optimizer.state2]] as const
  ) {
    const t = tensors.get(name);
    if (!t || t.data.length !== arena.layout.total) {
      throw new Error(`${file}: ${name} does not match this model; resume with the same model`);
    }
    arena.writeArena(t.data);
  }
}
