/**
 * Objectives on per-sequence log-probs, on the host: the weighted sum (SFT, tests) and the
 * preference and KTO losses of src/backend/losses.ts and src/backend/kto_loss.ts, packed into seqGrad
 * and metrics as the device does.
 *
 * @module
 */

import type { KtoLossSpec, PreferenceLossSpec } from "../backend/mod.ts";
import { PREFERENCE_METRICS } from "../backend/mod.ts";
import { ktoLossWith } from "../backend/kto_loss.ts";
import { preferenceLossWith } from "../backend/losses.ts";
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
  spec: PreferenceLossSpec,
  metrics: FloatArray,
  seqGrad: FloatArray,
  policy: FloatArray,
  reference: FloatArray,
  tokenCounts: FloatArray,
  winRates: FloatArray,
  P: number,
  scale: number,
): void {
  const half = (a: FloatArray, from: number) => a.subarray(from, from + P);
  const r = preferenceLossWith(
    spec,
    half(policy, 0),
    half(policy, P),
    half(reference, 0),
    half(reference, P),
    {
      chosenTokens: half(tokenCounts, 0),
      rejectedTokens: half(tokenCounts, P),
      chosenWinRates: half(winRates, 0),
      rejectedWinRates: half(winRates, P),
    },
  );
  const sums = new Array(PREFERENCE_METRICS.length).fill(0);
  for (let i = 0; i < P; i++) {
    // The pure function returns d(mean)/d; the op writes scale * d(sum)/d.
    seqGrad[i] = scale * P * r.dChosen[i];
    seqGrad[P + i] = scale * P * r.dRejected[i];
    const margin = r.chosenRewards[i] - r.rejectedRewards[i];
    sums[0] += r.losses[i];
    sums[1] += r.chosenRewards[i];
    sums[2] += r.rejectedRewards[i];
    sums[3] += r.chosenRewards[i] > r.rejectedRewards[i] ? 1 : 0;
    sums[4] += margin;
    sums[5] += policy[i];
    sums[6] += policy[P + i];
    sums[7] += r.nllLosses[i];
    sums[8] += r.logOddsRatios[i];
    sums[9] += r.logOdds[i];
  }
  for (let m = 0; m < sums.length; m++) metrics[m] += scale * sums[m];
}

/** See Ops.ktoLoss: refLogps holds the examples' reference log-probs then the mismatched pairs'. */
export function ktoLoss(
  spec: KtoLossSpec,
  metrics: FloatArray,
  seqGrad: FloatArray,
  policy: FloatArray,
  policyKl: FloatArray,
  reference: FloatArray,
  labels: FloatArray,
  B: number,
  scale: number,
): void {
  const r = ktoLossWith(
    spec,
    policy.subarray(0, B),
    policyKl.subarray(0, B),
    reference.subarray(0, B),
    reference.subarray(B, 2 * B),
    labels.subarray(0, B),
  );
  const sums = new Array(8).fill(0);
  for (let i = 0; i < B; i++) {
    seqGrad[i] = scale * B * r.grads[i];
    const desirable = labels[i] !== 0;
    sums[0] += r.losses[i];
    sums[desirable ? 2 : 3] += r.rewards[i];
    sums[desirable ? 4 : 5] += policy[i];
    sums[desirable ? 6 : 7] += 1;
  }
  metrics[0] += scale * sums[0];
  metrics[1] += scale * B * r.kl;
  for (let m = 2; m < 8; m++) metrics[m] += sums[m];
}
