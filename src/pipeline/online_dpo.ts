/**
 * Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"), with
 * the semantics of TRL's OnlineDPOTrainer: every micro-batch takes a batch of prompts, samples two
 * completions of each from the current policy on the device (the KV-cache sampler of
 * src/eval/sample.ts), scores both with the reward, labels the higher one chosen
 * (src/eval/labelling.ts `onlinePair`), runs the frozen reference live on the fresh pairs and
 * takes a DPO step with the run's loss (any `lossType`).
 *
 * This is the one stage that cannot use the reference cache on disk: its pairs exist only once
 * the policy has sampled them, so the reference (the starting SFT model, a second frozen copy of
 * its weights) scores them in the step, as TRL's trainer does.
 *
 * The loop is the shared one (./loop.ts): the prompt order is seeded and a pure function of the
 * step, and the sampling noise of micro-batch m is `mixSeed(seed, m)` (sample 1 of the batch's
 * prompt j on stream j, sample 2 on stream B + j, as TRL's `repeat(2, 1)` lays them out), so a
 * rerun is bit-identical and `resume` from a checkpoint continues exactly where the
 * uninterrupted run would be.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { sha256Hex } from "../io/hash.ts";
import { LlamaModel } from "../model/llama.ts";
import {
  type FrozenDtypeChoice,
  frozenDtypeOf,
  modelFingerprint,
  readModelFolder,
} from "../model/model_folder.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { readPrompts } from "../data/prompts.ts";
import { mixSeed } from "../data/sampler.ts";
import { collatePreference } from "../data/mod.ts";
import { encodePrompts, type EvalPrompt } from "../eval/evaluate.ts";
import { Sampler } from "../eval/sample.ts";
import { preferenceProbability, type RewardModule, scoreRewards } from "../eval/reward_fn.ts";
import { onlinePair, type TieRule } from "../eval/labelling.ts";
import { needsReference, type PreferenceLossOptions, resolveLossSpec } from "../backend/losses.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import type { MicroBatch } from "../train/trainer.ts";
import { loopDefaults, type LoopOptions, runLoop, totalSteps } from "./loop.ts";
import { fingerprintedOptions, type StageResult } from "./manifest.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";
import { trainedOutputs, trainingPolicy } from "./peft.ts";
import { assertRunFits } from "./memory.ts";
import { OnlineTrainer, type SampledBatch } from "./online_trainer.ts";

/** Options of {@link runOnlineDpo} (TRL's OnlineDPOConfig names where there is one). */
export interface OnlineDpoOptions extends PreferenceLossOptions {
  /** The starting policy and the frozen reference (the SFT model; HF folder with tokenizer). */
  model: string;
  /** Training prompts (JSONL with "prompt", or text lines); each distinct prompt once. */
  prompts: string;
  /** Where the model, checkpoints, metrics.jsonl, report.html and manifest.json go. */
  outputDir: string;
  /** The reward that labels each prompt's two samples. */
  reward: RewardModule;
  /** Tokens per sample at most (EOS included). @default 32 */
  maxNewTokens?: number;
  /** Sampling temperature (> 0). @default 1 */
  temperature?: number;
  /** A tie of the two rewards: "drop" the pair, or "first" chosen (TRL). @default drop */
  ties?: TieRule;
  /** Subtracted from the reward of a sample that did not end in EOS (TRL). @default 0 */
  missingEosPenalty?: number;
  /** A longer prompt keeps its last this many tokens. @default no limit */
  maxPromptLength?: number;
  /** The optimizer and its schedule. */
  optimizer?: ConstructorParameters<typeof DeviceOptimizer>[2];
  /** Prompts per micro-batch (`batchSize`), steps, logging, checkpoints and the seed. */
  loop: LoopOptions;
  /** Continue from the newest checkpoint in outputDir. */
  resume?: boolean;
  /** Redo the stage even when its outputs are up to date. */
  force?: boolean;
  /** Clear another run's outputs from outputDir instead of refusing. */
  overwriteOutputDir?: boolean;
  /** Device bytes the run may hold; the memory plan refuses more. */
  maxMemory?: number;
  /**
   * `--frozen-dtype`: the live reference in the checkpoint's bf16/f16 (auto: 2 bytes per element,
   * widened in the kernels, the same results) or widened to f32. The policy trains in f32.
   * @default "auto"
   */
  frozenDtype?: FrozenDtypeChoice;
}

/** What {@link runOnlineDpo} returns: the metrics rows, and the trained policy's folder. */
export interface OnlineDpoResult extends StageResult {
  /** The trained policy (HF layout), `outputDir`. */
  policy: string;
}

/** A bad option of Online DPO (exit 2). */
export class OnlineDpoOptionError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "OnlineDpoOptionError";
  }
}

/** Trains the policy with Online DPO; skipped when its manifest says the outputs are up to date. */
export async function runOnlineDpo(
  store: FileStore,
  backend: Backend,
  o: OnlineDpoOptions,
  hooks: StageHooks = {},
): Promise<OnlineDpoResult> {
  const maxNewTokens = o.maxNewTokens ?? 32, temperature = o.temperature ?? 1;
  const ties = o.ties ?? "drop", missingEosPenalty = o.missingEosPenalty ?? 0;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
    throw new OnlineDpoOptionError(`max new tokens (--max-new-tokens) must be an integer >= 1`);
  }
  if (!(temperature > 0)) throw new OnlineDpoOptionError(`temperature must be > 0`);
  if (ties !== "drop" && ties !== "first") {
    throw new OnlineDpoOptionError(`ties (--ties) must be "drop" or "first", got ${ties}`);
  }
  if (!(missingEosPenalty >= 0)) {
    throw new OnlineDpoOptionError(`--missing-eos-penalty must be >= 0, got ${missingEosPenalty}`);
  }
  const spec = resolveLossSpec(o);
  const loop = loopDefaults(o.loop);
  const loaded = await readModelFolder(store, o.model);
  const { config, rawConfig, weights } = loaded;
  const frozenDtype = frozenDtypeOf(loaded, o.frozenDtype);
  const tokenizer = await loadTokenizer(store, o.model);
  const keep = o.maxPromptLength;
  const prompts: EvalPrompt[] = encodePrompts(
    tokenizer,
    await readPrompts(store, o.prompts, { unique: true }),
  ).map((p) => keep && p.ids.length > keep ? { ...p, ids: p.ids.slice(-keep) } : p);
  const N = prompts.length;
  const B = loop.batchSize;
  const maxSeqLen = Math.max(...prompts.map((p) => p.ids.length)) + maxNewTokens;
  if (maxSeqLen > config.maxPositionEmbeddings) {
    throw new OnlineDpoOptionError(
      `the longest prompt plus --max-new-tokens ${maxNewTokens} is ${maxSeqLen} tokens, more ` +
        `than the model's max_position_embeddings ${config.maxPositionEmbeddings}: lower ` +
        "--max-new-tokens or set --max-prompt-length",
    );
  }

  await store.mkdirp(o.outputDir);
  const policyFingerprint = await modelFingerprint(config, weights);
  const { reward: _w, ...options } = fingerprintedOptions(o);
  const stage = await openStage(store, {
    stage: "online-dpo",
    manifestPath: joinPath(o.outputDir, "manifest.json"),
    options: {
      ...options,
      reward: o.reward.source,
      maxNewTokens,
      temperature,
      ties,
      missingEosPenalty,
      loss: spec,
      loop,
    },
    inputs: {
      policy: policyFingerprint,
      reference: policyFingerprint,
      prompts: await sha256Hex(await store.readFile(o.prompts)),
    },
    adapter: backend.adapterName,
    outputs: trainedOutputs(o.outputDir),
    force: o.force,
    outputDir: o.outputDir,
    overwrite: o.overwriteOutputDir,
    log: hooks.log,
  });
  if (stage.upToDate) return { ...await skippedTraining(store, o.outputDir), policy: o.outputDir };
  try {
    const modelOptions = { maxBatch: 2 * B, maxSeqLen };
    const { model } = await trainingPolicy(store, backend, {
      config,
      weights,
      source: o.model,
      modelOptions: { ...modelOptions, gradientCheckpointing: loop.gradientCheckpointing },
      seed: loop.seed,
      log: hooks.log,
      check: () =>
        assertRunFits(
          backend,
          {
            config,
            rows: 2 * B,
            seqLen: maxSeqLen,
            train: true,
            liveReference: needsReference(spec),
            gradientCheckpointing: loop.gradientCheckpointing,
            frozenDtype,
          },
          o.maxMemory,
          { rowsPerExample: 2, gradientCheckpointing: true },
          "online-dpo",
        ),
    });
    let reference: LlamaModel | undefined;
    if (needsReference(spec)) {
      reference = new LlamaModel(backend, config, {
        ...modelOptions,
        trainable: false,
        frozenDtype,
      });
      reference.params.writeAll(weights, { source: o.model });
    }
    const optimizer = new DeviceOptimizer(backend, model.trainable.layout, {
      ...o.optimizer,
      totalSteps: totalSteps(N, loop),
    });
    const trainer = new OnlineTrainer(
      model,
      optimizer,
      spec,
      reference,
      loop.seed,
      loop.gradientAccumulationSteps,
    );
    const sampler = new Sampler(model, { batchSize: 2 * B, maxLength: maxSeqLen });
    const configEos = config.eosTokenId === null ? [] : [config.eosTokenId].flat();
    const tokenizerEos = tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId];
    const eosTokenIds = [...new Set([...configEos, ...tokenizerEos])];
    const padTokenId = tokenizer.padTokenId;
    stage.manifest.sources = { policy: o.model, reference: `${o.model} (live)` };
    stage.manifest.results = { device_bytes: backend.bytesByRole() };

    /** Samples, scores and labels the micro-batch of prompts `indices` (micro-batch `m`). */
    const sampleBatch = async (indices: number[], m: number): Promise<SampledBatch> => {
      hooks.signal?.throwIfAborted();
      const ids = indices.map((i) => prompts[i].ids);
      const outs = await sampler.generate([...ids, ...ids], {
        maxNewTokens,
        temperature,
        seed: mixSeed(loop.seed, m),
        eosTokenIds,
        padTokenId,
      });
      const P = indices.length;
      const ended = outs.map((g) => g.finishReason === "eos");
      const texts = outs.map((g, s) =>
        tokenizer.decode(ended[s] ? g.tokens.slice(0, -1) : g.tokens)
      );
      const rewards = (await scoreRewards(
        o.reward,
        outs.map((_, s) => ({
          promptIndex: indices[s % P],
          prompt: prompts[indices[s % P]].text,
          completion: texts[s],
        })),
      )).map((r, s) => ended[s] ? r : r - missingEosPenalty);
      const pairs = [], chosenRewards = [], rejectedRewards = [];
      let tied = 0;
      for (let j = 0; j < P; j++) {
        // A module with its own judge labels the pair by it: the first is chosen when P > 1/2.
        const first = o.reward.prefer
          ? await preferenceProbability(o.reward, indices[j], prompts[indices[j]].text, {
            completion: texts[j],
            reward: rewards[j],
          }, { completion: texts[P + j], reward: rewards[P + j] })
          : rewards[j];
        const second = o.reward.prefer ? 1 - first : rewards[P + j];
        if (first === second) tied++;
        const pair = onlinePair(first, second, ties);
        if (!pair) continue;
        const [c, r] = [pair.chosen * P + j, pair.rejected * P + j];
        pairs.push({
          promptIds: prompts[indices[j]].ids,
          chosenIds: outs[c].tokens,
          rejectedIds: outs[r].tokens,
        });
        chosenRewards.push(rewards[c]);
        rejectedRewards.push(rewards[r]);
      }
      return {
        micro: { batch: collatePreference(pairs, { padTokenId }) },
        rewards,
        chosenRewards,
        rejectedRewards,
        tied,
        entropy: outs.reduce((n, g) => n - g.logps.reduce((a, b) => a + b, 0), 0) / outs.length,
        containEos: ended.filter(Boolean).length / ended.length,
        sampledTokens: outs.reduce((n, g) => n + g.tokens.length, 0),
      };
    };

    const rows = await runLoop({
      store,
      outputDir: o.outputDir,
      model,
      optimizer,
      trainer,
      examples: N,
      options: loop,
      unit: "prompts",
      tokenizerFrom: o.model,
      rawConfig,
      resume: o.resume,
      runFingerprint: stage.manifest.stage_fingerprint,
    }, {
      microBatch: async (indices): Promise<MicroBatch> =>
        trainer.add(await sampleBatch(indices, trainer.nextMicroBatch())),
      ...hooks,
    });
    await stage.finish({ final: rows.at(-1), device_bytes: backend.bytesByRole() });
    return { skipped: false, rows, policy: o.outputDir };
  } finally {
    await stage.release();
  }
}
