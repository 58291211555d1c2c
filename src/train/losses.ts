/**
 * Preference losses as pure functions of per-sequence log-probs, after the reference DPO
 * implementation's `preference_loss`: named intermediates, each formula cited.
 *
 * Notation (Rafailov et al. 2023, eq. 7): for a pair, `logits = (logp_pi(yw) - logp_pi(yl)) -
 * (logp_ref(yw) - logp_ref(yl))`, the implicit rewards are `beta * (logp_pi(y) - logp_ref(y))`.
 *
 * @module
 */

import type { PreferenceLossType } from "../backend.ts";

/** log(sigmoid(x)), stable for large |x|. */
export function logSigmoid(x: number): number {
  return x < 0 ? x - Math.log1p(Math.exp(x)) : -Math.log1p(Math.exp(-x));
}

/** sigmoid(x), stable for large |x|. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** One pair's loss and its derivative with respect to `logits`. */
export interface PairLoss {
  loss: number;
  /** d(loss)/d(logits); d/d(policy chosen) = +dLogits, d/d(policy rejected) = -dLogits. */
  dLogits: number;
}

/**
 * The per-pair loss of `lossType` at `logits` (see module notation).
 * - sigmoid (DPO, eq. 7; cDPO with label smoothing ε): -(1-ε) logσ(βx) - ε logσ(-βx)
 * - robust (Chowdhury et al. 2024): ((1-ε)(-logσ(βx)) + ε logσ(-βx)) / (1-2ε)
 * - hinge (SLiC, Zhao et al. 2023): max(0, 1 - βx)
 * - ipo (Azar et al. 2024, eq. 17, summed log-probs): (x - 1/(2β))^2
 */
export function pairLoss(
  lossType: PreferenceLossType,
  logits: number,
  beta: number,
  labelSmoothing = 0,
): PairLoss {
  const z = beta * logits;
  const eps = labelSmoothing;
  switch (lossType) {
    case "sigmoid":
      return {
        loss: -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z),
        dLogits: beta * (-(1 - eps) * sigmoid(-z) + eps * sigmoid(z)),
      };
    case "robust":
      return {
        loss: ((1 - eps) * -logSigmoid(z) + eps * logSigmoid(-z)) / (1 - 2 * eps),
        dLogits: beta * (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1 - 2 * eps),
      };
    case "hinge":
      return z < 1 ? { loss: 1 - z, dLogits: -beta } : { loss: 0, dLogits: 0 };
    case "ipo": {
      const diff = logits - 1 / (2 * beta);
      return { loss: diff * diff, dLogits: 2 * diff };
    }
  }
}

/** Per-pair results of {@link preferenceLoss}. */
export interface PreferenceLossResult {
  losses: number[];
  chosenRewards: number[];
  rejectedRewards: number[];
  /** d(mean loss)/d(policy chosen logp) and /d(policy rejected logp), per pair. */
  dChosen: number[];
  dRejected: number[];
}

/**
 * Preference losses of a batch of pairs.
 *
 * @example
 * ```ts
 * const r = preferenceLoss([-0.5], [-0.1], [-0.5], [-0.1], { beta: 0.1 });
 * r.losses[0]; // ln 2: the policy equals the reference
 * ```
 */
export function preferenceLoss(
  policyChosen: ArrayLike<number>,
  policyRejected: ArrayLike<number>,
  referenceChosen: ArrayLike<number>,
  referenceRejected: ArrayLike<number>,
  { beta = 0.1, labelSmoothing = 0, lossType = "sigmoid" as PreferenceLossType } = {},
): PreferenceLossResult {
  const P = policyChosen.length;
  const out: PreferenceLossResult = {
    losses: [],
    chosenRewards: [],
    rejectedRewards: [],
    dChosen: [],
    dRejected: [],
  };
  for (let i = 0; i < P; i++) {
    const chosenLogRatio = policyChosen[i] - referenceChosen[i];
    const rejectedLogRatio = policyRejected[i] - referenceRejected[i];
    const logits = chosenLogRatio - rejectedLogRatio;
    const { loss, dLogits } = pairLoss(lossType, logits, beta, labelSmoothing);
    out.losses.push(loss);
    out.chosenRewards.push(beta * chosenLogRatio);
    out.rejectedRewards.push(beta * rejectedLogRatio);
    out.dChosen.push(dLogits / P);
    out.dRejected.push(-dLogits / P);
  }
  return out;
}
