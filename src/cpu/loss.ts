/**
 * Objectives on per-sequence log-probs, on the host: the weighted sum (SFT, tests) and the
 * preference losses of src/train/losses.ts packed into seqGrad and metrics as the device does.
 *
 * @module
 */

import type { PreferenceLossType } from "../backend.ts";
import { pairLoss } from "../train/losses.ts";
import type { FloatArray } from "./types.ts";

/** loss[0] (+)= sum_s weights[s] * seqLogps[s]; seqGrad = weights. */
export function weightedSum(
  loss: FloatArray,
  seqGrad: FloatArray,
  seqLogps: FloatArray,
  weights: FloatArray,
  S: number,
  accumulate: boolean,
): void {
  let sum = 0;
  for (let s = 0; s < S; s++) {
    sum += weights[s] * seqLogps[s];
    seqGrad[s] = weights[s];
  }
  loss[0] = (accumulate ? loss[0] : 0) + sum;
}

/** See Ops.preferenceLoss: chosen rows 0..P-1, rejected P..2P-1. */
export function preferenceLoss(
  lossType: PreferenceLossType,
  metrics: FloatArray,
  seqGrad: FloatArray,
  policy: FloatArray,
  reference: FloatArray,
  P: number,
  beta: number,
  labelSmoothing: number,
  scale: number,
): void {
  const sums = new Array(7).fill(0);
  for (let i = 0; i < P; i++) {
    const chosenLogRatio = policy[i] - reference[i];
    const rejectedLogRatio = policy[P + i] - reference[P + i];
    const { loss, dLogits } = pairLoss(
      lossType,
      chosenLogRatio - rejectedLogRatio,
      beta,
      labelSmoothing,
    );
    const chosenReward = beta * chosenLogRatio;
    const rejectedReward = beta * rejectedLogRatio;
    seqGrad[i] = scale * dLogits;
    seqGrad[P + i] = -scale * dLogits;
    sums[0] += loss;
    sums[1] += chosenReward;
    sums[2] += rejectedReward;
    sums[3] += chosenReward > rejectedReward ? 1 : 0;
    sums[4] += chosenReward - rejectedReward;
    sums[5] += policy[i];
    sums[6] += policy[P + i];
  }
  for (let m = 0; m < 7; m++) metrics[m] += scale * sums[m];
}
