/**
 * KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization") as a
 * pure function of per-sequence log-probs, as TRL's KTOTrainer computes it. Data are unpaired:
 * each example is a prompt, a completion and a desirability label. The reference point z0 is the
 * KL estimate from mismatched pairs — prompt i with the completion of example i+1 in dataset
 * order (the last wraps to the first), so the precompute stage can cache their reference
 * log-probs — averaged over the batch, detached and clamped at 0 (eq. 8 and §4.1).
 *
 * With r = logp_pi(y|x) - logp_ref(y|x):
 *   desirable:   λ_D (1 - σ(β (r - z0)))      undesirable: λ_U (1 - σ(β (z0 - r)))
 * `apo_zero_unpaired` (D'Oosterlinck et al. 2024) drops z0: 1 - σ(β r) and σ(β r).
 * The batch loss is the mean over examples.
 *
 * @module
 */

import { KTO_LOSS_DEFAULTS, type KtoLossSpec } from "./loss_spec.ts";
import { sigmoid } from "./pair_terms.ts";

/** Fills KTOConfig's defaults ({@link KTO_LOSS_DEFAULTS}) and checks the values. */
export function resolveKtoSpec(o: Partial<KtoLossSpec> = {}): KtoLossSpec {
  const d = KTO_LOSS_DEFAULTS;
  const spec: KtoLossSpec = {
    lossType: o.lossType ?? d.lossType,
    beta: o.beta ?? d.beta,
    desirableWeight: o.desirableWeight ?? d.desirableWeight,
    undesirableWeight: o.undesirableWeight ?? d.undesirableWeight,
  };
  if (spec.lossType !== "kto" && spec.lossType !== "apo_zero_unpaired") {
    throw new RangeError(`unknown KTO loss type "${spec.lossType}"; kto or apo_zero_unpaired`);
  }
  if (!(spec.beta > 0)) throw new RangeError(`beta must be > 0, got ${spec.beta}`);
  if (!(spec.desirableWeight > 0 && spec.undesirableWeight > 0)) {
    throw new RangeError("desirable and undesirable weights must be > 0");
  }
  return spec;
}

/** Per-example results of {@link ktoLoss}. */
export interface KtoResult {
  /** Per-example loss (weighted by the desirable or undesirable weight). */
  losses: number[];
  /** β r per example (rewards/chosen for desirable ones, rewards/rejected otherwise). */
  rewards: number[];
  /** d(mean loss)/d(policy logp), per example (the mismatched pairs get none: z0 is detached). */
  grads: number[];
  /** z0 = max(0, mean(policyKl - referenceKl)); 0 for apo_zero_unpaired. */
  kl: number;
}

/**
 * KTO losses of a batch of examples.
 *
 * @example
 * ```ts
 * const r = ktoLoss([-3], [-4], [-3], [-4], [true]);
 * r.losses[0]; // 0.5: policy = reference, z0 = 0
 * ```
 */
export function ktoLoss(
  policyLogps: ArrayLike<number>,
  policyKlLogps: ArrayLike<number>,
  referenceLogps: ArrayLike<number>,
  referenceKlLogps: ArrayLike<number>,
  labels: ArrayLike<boolean | number>,
  options: Partial<KtoLossSpec> = {},
): KtoResult {
  return ktoLossWith(
    resolveKtoSpec(options),
    policyLogps,
    policyKlLogps,
    referenceLogps,
    referenceKlLogps,
    labels,
  );
}

/** {@link ktoLoss} with a resolved spec (what the backends call: no defaults filled again). */
export function ktoLossWith(
  spec: KtoLossSpec,
  policyLogps: ArrayLike<number>,
  policyKlLogps: ArrayLike<number>,
  referenceLogps: ArrayLike<number>,
  referenceKlLogps: ArrayLike<number>,
  labels: ArrayLike<boolean | number>,
): KtoResult {
  const { lossType, beta, desirableWeight, undesirableWeight } = spec;
  const B = policyLogps.length;
  let klSum = 0;
  for (let i = 0; i < B; i++) klSum += policyKlLogps[i] - referenceKlLogps[i];
  const kl = lossType === "kto" ? Math.max(0, klSum / B) : 0;
  const out: KtoResult = { losses: [], rewards: [], grads: [], kl };
  for (let i = 0; i < B; i++) {
    const logRatio = policyLogps[i] - referenceLogps[i];
    // The loss is w (1 - σ(β u)) with u = ±(r - z0); d/dr = -w β σ'(β u) du/dr.
    const sign = labels[i] ? 1 : -1;
    const w = labels[i] ? desirableWeight : undesirableWeight;
    const u = sign * (logRatio - kl);
    const q = sigmoid(beta * u);
    out.losses.push(w * (1 - q));
    out.grads.push((-w * beta * q * (1 - q) * sign) / B);
    out.rewards.push(beta * logRatio);
  }
  return out;
}

/**
 * TRL's warning when the desirable and undesirable weights do not balance the data (eq. 8 of
 * the paper: λ_D n_D / (λ_U n_U) should lie in [1, 4/3]); undefined when they do.
 */
export function ktoWeightWarning(
  numDesirable: number,
  numUndesirable: number,
  spec: KtoLossSpec,
): string | undefined {
  const nD = Math.max(numDesirable, 1), nU = Math.max(numUndesirable, 1);
  if (nD === nU) return undefined;
  const round = (x: number) => Math.round(x * 100) / 100;
  const desLow = round(nU * spec.undesirableWeight / nD);
  const desHigh = round(nU * spec.undesirableWeight / nD * 1.33);
  const undLow = round(nD * spec.desirableWeight / nU / 1.33);
  const undHigh = round(nD * spec.desirableWeight / nU);
  const desOk = desLow <= spec.desirableWeight && spec.desirableWeight <= desHigh;
  const undOk = undLow <= spec.undesirableWeight && spec.undesirableWeight <= undHigh;
  if (desOk || undOk) return undefined;
  return `you have ${nD} desirable and ${nU} undesirable examples but the weights on the ` +
    `desirable and undesirable losses don't balance them: set EITHER --desirable-weight in ` +
    `[${desLow}, ${desHigh}] OR --undesirable-weight in [${undLow}, ${undHigh}] (but not both); ` +
    "see docs/losses.md";
}
