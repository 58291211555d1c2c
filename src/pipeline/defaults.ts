/**
 * The embedded default run: files in data/ and the hyperparameters the default pipeline uses
 * (sized so that SFT + precompute + DPO finish in minutes on a software adapter).
 *
 * @module
 */

import { joinPath } from "../io/fs.ts";
import type { PipelineSpec } from "./pipeline.ts";
import { sentimentReward } from "../world/reward.ts";

/** Folder of the embedded default, relative to the project root. */
export const DEFAULT_WORLD = "data";

/** The default pipeline over `root/data`, writing to `root/runs/<runName>`. */
export function defaultPipelineSpec(root: string, runName: string, force: boolean): PipelineSpec {
  const data = (f: string) => joinPath(root, DEFAULT_WORLD, f);
  return {
    baseModel: data("base"),
    sftData: data("sft.jsonl"),
    sftEvalData: data("sft_eval.jsonl"),
    preferenceData: data("preferences.jsonl"),
    preferenceEvalData: data("preferences_eval.jsonl"),
    runDir: joinPath(root, "runs", runName),
    tokenOptions: { maxLength: 64, maxPromptLength: 32 },
    sft: {
      optimizer: { lr: 1e-3, schedule: "linear", warmupSteps: 5 },
      loop: { batchSize: 32, numTrainEpochs: 1, loggingSteps: 5 },
    },
    dpo: {
      optimizer: { lr: 1.5e-3, schedule: "linear", warmupSteps: 5 },
      loop: { batchSize: 16, numTrainEpochs: 1, loggingSteps: 5, evalSteps: 50 },
      beta: 0.5,
    },
    evalPrompts: data("prompts_eval.jsonl"),
    eval: { seeds: [0, 1, 2], maxNewTokens: 16, batchSize: 64 },
    reward: sentimentReward,
    force,
  };
}
