/**
 * Preference losses as pure functions of per-sequence log-probs, after the reference DPO
 * implementation's `preference_loss`: named intermediates, each formula cited. The device kernel
 * (src/gpu/kernels/loss.ts) mirrors {@link pairTerm} line for line; docs/losses.md has the table.
 *
 * Notation (Rafailov et al. 2023, eq. 7; TRL's DPOTrainer): per pair, the log-ratios
 * `s_w = logp_pi(y_w) - logp_ref(y_w)` and `s_l` likewise (the reference is 0 with
 * `referenceFree`), passed through the f-divergence's score `f` (identity for reverse KL),
 * `delta = f(s_w) - f(s_l)`, the margin `z = beta * delta + rdpoAlpha * (|y_w| - |y_l|)`, and
 * `|y|` the completion's token count (at least 1). The batch loss is the mean over pairs of the
 * weighted sum of the listed losses.
 *
 * @module
 */

import { type PairInput, pairTerm, sortedPartners, usesPerTokenRewards } from "./pair_terms.ts";
import type { FDivergenceType, PreferenceLossSpec, PreferenceLossType } from "./loss_spec.ts";
import { PREFERENCE_LOSS_DEFAULTS, PREFERENCE_LOSS_TYPES } from "./loss_spec.ts";

export { logSigmoid, type PairInput, type PairTerm, pairTerm, sigmoid } from "./pair_terms.ts";

/** Losses that read no reference log-probs (SimPO, ORPO, and the NLL term). */
export const REFERENCE_FREE_LOSSES: ReadonlySet<PreferenceLossType> = new Set([
  "simpo",
  "orpo",
  "sft",
]);

/** Options of a preference loss; every field has TRL's default. */
export interface PreferenceLossOptions {
  /** One type or a list (the loss is the weighted sum). @default "sigmoid" */
  lossType?: PreferenceLossType | readonly PreferenceLossType[];
  /** One weight per type. @default all 1 */
  lossWeights?: readonly number[];
  /** β, the implicit KL strength. @default 0.1 */
  beta?: number;
  /** cDPO / robust / EXO's ε; exo_pair uses 1e-3 when it is 0 (TRL < 0.20). @default 0 */
  labelSmoothing?: number;
  /** f-divergence of f-DPO. @default "reverse_kl" */
  fDivergenceType?: FDivergenceType;
  /** α of the alpha divergence. @default 0.5 */
  fAlphaDivergenceCoef?: number;
  /** Treat the reference log-probs as 0 (no reference model). @default false */
  referenceFree?: boolean;
  /** R-DPO's length penalty α. @default 0 */
  rdpoAlpha?: number;
  /** SimPO's target margin γ. @default 0.5 */
  simpoGamma?: number;
  /** DiscoPOP's temperature τ. @default 0.05 */
  discopopTau?: number;
  /** IPO on per-token averages (TRL) instead of sums. @default true */
  ipoLengthNormalized?: boolean;
}

/** Fills the defaults and checks the combination; errors name the option and what to do. */
export function resolveLossSpec(o: PreferenceLossOptions = {}): PreferenceLossSpec {
  const d = PREFERENCE_LOSS_DEFAULTS;
  const lossTypes = typeof o.lossType === "string"
    ? [o.lossType]
    : [...(o.lossType ?? [d.lossType])];
  if (lossTypes.length === 0 || lossTypes.length > 8) {
    throw new RangeError(`loss types (--loss-type): give 1 to 8, got ${lossTypes.length}`);
  }
  for (const t of lossTypes) {
    if (!(PREFERENCE_LOSS_TYPES as readonly string[]).includes(t)) {
      throw new RangeError(`unknown loss type "${t}"; one of ${PREFERENCE_LOSS_TYPES.join(", ")}`);
    }
  }
  if (lossTypes.includes("aot") && lossTypes.includes("aot_unpaired")) {
    throw new RangeError(
      "aot and aot_unpaired (--loss-type) sort the batch differently: use one of them",
    );
  }
  const lossWeights = [...(o.lossWeights ?? lossTypes.map(() => 1))];
  if (lossWeights.length !== lossTypes.length) {
    throw new RangeError(
      `loss weights (--loss-weights): ${lossWeights.length} weights for ${lossTypes.length} loss types`,
    );
  }
  const spec: PreferenceLossSpec = {
    lossTypes,
    lossWeights,
    beta: o.beta ?? d.beta,
    labelSmoothing: o.labelSmoothing ?? d.labelSmoothing,
    fDivergenceType: o.fDivergenceType ?? d.fDivergenceType,
    fAlphaDivergenceCoef: o.fAlphaDivergenceCoef ?? d.fAlphaDivergenceCoef,
    // A loss that reads no reference (simpo, orpo, sft) also reports reference-free rewards.
    referenceFree: (o.referenceFree ?? d.referenceFree) ||
      lossTypes.every((t) => REFERENCE_FREE_LOSSES.has(t)),
    rdpoAlpha: o.rdpoAlpha ?? d.rdpoAlpha,
    simpoGamma: o.simpoGamma ?? d.simpoGamma,
    discopopTau: o.discopopTau ?? d.discopopTau,
    ipoLengthNormalized: o.ipoLengthNormalized ?? d.ipoLengthNormalized,
  };
  if (!(spec.beta > 0)) throw new RangeError(`beta (--beta) must be > 0, got ${spec.beta}`);
  const eps = spec.labelSmoothing;
  if (!(eps >= 0 && eps < 0.5)) {
    throw new RangeError(`label smoothing (--label-smoothing) must be in [0, 0.5), got ${eps}`);
  }
  if (!(spec.discopopTau > 0)) {
    throw new RangeError(`DiscoPOP τ (--discopop-tau) must be > 0, got ${spec.discopopTau}`);
  }
  return spec;
}

/**
 * Whether a resolved loss reads reference log-probs (and so needs a cache or a reference model);
 * {@link resolveLossSpec} sets `referenceFree` for the losses that read none.
 */
export function needsReference(spec: PreferenceLossSpec): boolean {
  return !spec.referenceFree;
}

/** Per-pair results of {@link preferenceLoss}. */
export interface PreferenceLossResult {
  /** Weighted sum of the listed losses, per pair. */
  losses: number[];
  /** β (log π - log ref) of the chosen completion, per pair. */
  chosenRewards: number[];
  /** β (log π - log ref) of the rejected completion, per pair. */
  rejectedRewards: number[];
  /** d(mean loss)/d(policy chosen logp), per pair. */
  dChosen: number[];
  /** d(mean loss)/d(policy rejected logp), per pair. */
  dRejected: number[];
  /** Per-token NLL of the chosen completion (`nll_loss`). */
  nllLosses: number[];
  /** ORPO's log σ(log-odds) (`log_odds_ratio`), per pair. */
  logOddsRatios: number[];
  /** ORPO's log-odds of chosen over rejected (`log_odds_chosen`), per pair. */
  logOdds: number[];
}

/** Token counts per sequence, for the length-normalised losses. */
export interface TokenCounts {
  /** Completion tokens of each chosen sequence. */
  chosenTokens?: ArrayLike<number>;
  /** Completion tokens of each rejected sequence. */
  rejectedTokens?: ArrayLike<number>;
}

/**
 * SPPO's estimated win-rates P̂(y ≻ π_t | x) per pair (the dataset's `chosen_win_rate` and
 * `rejected_win_rate`), in [0, 1]; read by `sppo` only, required there.
 */
export interface WinRates {
  /** Win-rate of each chosen completion. */
  chosenWinRates?: ArrayLike<number>;
  /** Win-rate of each rejected completion. */
  rejectedWinRates?: ArrayLike<number>;
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
  options: PreferenceLossOptions & TokenCounts & WinRates = {},
): PreferenceLossResult {
  return preferenceLossWith(
    resolveLossSpec(options),
    policyChosen,
    policyRejected,
    referenceChosen,
    referenceRejected,
    options,
  );
}

/**
 * {@link preferenceLoss} with a resolved spec: what the CPU backend and the evaluation call, so a
 * run's loss is resolved once, where its options are read.
 */
export function preferenceLossWith(
  spec: PreferenceLossSpec,
  policyChosen: ArrayLike<number>,
  policyRejected: ArrayLike<number>,
  referenceChosen: ArrayLike<number>,
  referenceRejected: ArrayLike<number>,
  counts: TokenCounts & WinRates = {},
): PreferenceLossResult {
  const P = policyChosen.length;
  if (spec.lossTypes.includes("sppo") && (!counts.chosenWinRates || !counts.rejectedWinRates)) {
    throw new RangeError(
      "loss sppo reads each pair's win-rates: give chosenWinRates and rejectedWinRates " +
        "(the dataset's chosen_win_rate and rejected_win_rate)",
    );
  }
  const pairs: PairInput[] = Array.from({ length: P }, (_, i) => ({
    policyChosen: policyChosen[i],
    policyRejected: policyRejected[i],
    referenceChosen: spec.referenceFree ? 0 : referenceChosen[i],
    referenceRejected: spec.referenceFree ? 0 : referenceRejected[i],
    chosenTokens: Math.max(1, counts.chosenTokens?.[i] ?? 1),
    rejectedTokens: Math.max(1, counts.rejectedTokens?.[i] ?? 1),
    chosenWinRate: counts.chosenWinRates?.[i],
    rejectedWinRate: counts.rejectedWinRates?.[i],
  }));
  const partners = sortedPartners(spec, pairs);
  const perToken = usesPerTokenRewards(spec);
  const out: PreferenceLossResult = {
    losses: [],
    chosenRewards: [],
    rejectedRewards: [],
    dChosen: [],
    dRejected: [],
    nllLosses: [],
    logOddsRatios: [],
    logOdds: [],
  };
  pairs.forEach((x, i) => {
    let loss = 0, dChosen = 0, dRejected = 0;
    spec.lossTypes.forEach((type, k) => {
      const t = pairTerm(type, x, spec, partners?.[i]);
      const w = spec.lossWeights[k];
      loss += w * t.loss;
      dChosen += w * t.dChosen;
      dRejected += w * t.dRejected;
    });
    const orpo = pairTerm("orpo", x, spec);
    out.losses.push(loss);
    out.dChosen.push(dChosen / P);
    out.dRejected.push(dRejected / P);
    // Implicit rewards: beta * log-ratio (DPO); SimPO/ORPO first: beta * mean token log-prob.
    const ref = perToken ? [0, 0] : [x.referenceChosen, x.referenceRejected];
    const len = perToken ? [x.chosenTokens, x.rejectedTokens] : [1, 1];
    out.chosenRewards.push(spec.beta * (x.policyChosen - ref[0]) / len[0]);
    out.rejectedRewards.push(spec.beta * (x.policyRejected - ref[1]) / len[1]);
    out.nllLosses.push(-x.policyChosen / x.chosenTokens);
    out.logOddsRatios.push(orpo.logOddsRatio!);
    out.logOdds.push(orpo.logOdds!);
  });
  return out;
}

/** Means of a {@link preferenceLoss} result and the policy log-probs under TRL's metric names. */
export function preferenceMetrics(
  r: PreferenceLossResult,
  policyChosen: ArrayLike<number>,
  policyRejected: ArrayLike<number>,
  spec: PreferenceLossSpec,
): Record<string, number> {
  const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
  const margins = r.chosenRewards.map((c, i) => c - r.rejectedRewards[i]);
  const out: Record<string, number> = {
    loss: mean(r.losses),
    "rewards/chosen": mean(r.chosenRewards),
    "rewards/rejected": mean(r.rejectedRewards),
    "rewards/accuracies": mean(margins.map((m) => (m > 0 ? 1 : 0))),
    "rewards/margins": mean(margins),
    "logps/chosen": mean(policyChosen),
    "logps/rejected": mean(policyRejected),
  };
  for (const [name, value] of Object.entries(extraMetrics(spec, r))) out[name] = value;
  return out;
}

function extraMetrics(spec: PreferenceLossSpec, r: PreferenceLossResult) {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const out: Record<string, number> = {};
  for (const name of metricsOf(spec).slice(7)) {
    out[name] = mean(
      name === "nll_loss" ? r.nllLosses : name === "log_odds_ratio" ? r.logOddsRatios : r.logOdds,
    );
  }
  return out;
}

/** The metric names a spec reports: TRL's seven, `nll_loss` with sft/orpo, ORPO's log-odds. */
export function metricsOf(spec: PreferenceLossSpec): string[] {
  const names = [
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
  ];
  if (spec.lossTypes.includes("sft") || spec.lossTypes.includes("orpo")) names.push("nll_loss");
  if (spec.lossTypes.includes("orpo")) names.push("log_odds_ratio", "log_odds_chosen");
  return names;
}
