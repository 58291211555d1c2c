/**
 * The loss specification both backends implement: the preference and KTO loss types (TRL's
 * names), their resolved hyperparameters, and the order of the metrics a loss accumulates on the
 * device. Resolved once where a run's options are read (src/backend/losses.ts `resolveLossSpec`)
 * and passed down whole.
 *
 * @module
 */

/**
 * TRL's paired preference losses (DPOConfig.loss_type) plus SimPO, ORPO and SPPO's soft form
 * (which reads each pair's win-rates); a type's index is its code on the device. docs/losses.md
 * has a row per loss.
 */
export const PREFERENCE_LOSS_TYPES = [
  "sigmoid",
  "robust",
  "hinge",
  "ipo",
  "exo_pair",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "aot",
  "aot_unpaired",
  "apo_zero",
  "apo_down",
  "discopop",
  "sigmoid_norm",
  "sft",
  "simpo",
  "orpo",
  "sppo",
] as const;

/** A paired preference loss with a device kernel. */
export type PreferenceLossType = typeof PREFERENCE_LOSS_TYPES[number];

/** TRL's f-divergence of the implicit reward (Wang et al. 2023, "Beyond Reverse KL"). */
export type FDivergenceType = "reverse_kl" | "forward_kl" | "js_divergence" | "alpha_divergence";

/**
 * A resolved preference loss: the weighted sum of `lossTypes` and their hyperparameters (TRL's
 * DPOConfig names in camelCase). `resolveLossSpec` in src/backend/losses.ts fills the defaults.
 */
export interface PreferenceLossSpec {
  /** The loss types summed (TRL's `loss_type`, one or a list). */
  lossTypes: readonly PreferenceLossType[];
  /** One weight per type; the loss is the weighted sum. */
  lossWeights: readonly number[];
  /** β: strength of the implicit KL penalty (IPO's τ, ORPO's λ). */
  beta: number;
  /** cDPO / robust / EXO's ε (`label_smoothing`). */
  labelSmoothing: number;
  /** f-divergence of the f-DPO loss (`f_divergence_type`). */
  fDivergenceType: FDivergenceType;
  /** α of the alpha divergence (`f_alpha_divergence_coef`). */
  fAlphaDivergenceCoef: number;
  /** Treat the reference log-probs as 0 (an implicit uniform reference). */
  referenceFree: boolean;
  /** R-DPO's length penalty α on the margin (Park et al. 2024); 0 = off. */
  rdpoAlpha: number;
  /** SimPO's target margin γ, in reward units. */
  simpoGamma: number;
  /** DiscoPOP's temperature τ. */
  discopopTau: number;
  /** IPO on per-token averages (TRL) instead of the paper's sums. */
  ipoLengthNormalized: boolean;
}

/**
 * The defaults of a preference loss (TRL's DPOConfig): `resolveLossSpec` fills them and the
 * command line's help shows them, so each is written once.
 */
export const PREFERENCE_LOSS_DEFAULTS = {
  lossType: "sigmoid",
  beta: 0.1,
  labelSmoothing: 0,
  fDivergenceType: "reverse_kl",
  fAlphaDivergenceCoef: 0.5,
  referenceFree: false,
  rdpoAlpha: 0,
  simpoGamma: 0.5,
  discopopTau: 0.05,
  ipoLengthNormalized: true,
} as const;

/** KTO's loss types (KTOConfig.loss_type). */
export type KtoLossType = "kto" | "apo_zero_unpaired";

/** KTO's hyperparameters (TRL's KTOConfig names in camelCase). */
export interface KtoLossSpec {
  /** KTO's loss type (`loss_type`). */
  lossType: KtoLossType;
  /** β: strength of the implicit KL penalty. */
  beta: number;
  /** Weight of desirable examples' losses (`desirable_weight`). */
  desirableWeight: number;
  /** Weight of undesirable examples' losses (`undesirable_weight`). */
  undesirableWeight: number;
}

/** The defaults of KTO (TRL's KTOConfig), filled by `resolveKtoSpec` and shown by the CLI. */
export const KTO_LOSS_DEFAULTS = {
  lossType: "kto",
  beta: 0.1,
  desirableWeight: 1,
  undesirableWeight: 1,
} as const satisfies KtoLossSpec;

/** Order of the metrics a preference loss accumulates (TRL's names). */
export const PREFERENCE_METRICS = [
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/accuracies",
  "rewards/margins",
  "logps/chosen",
  "logps/rejected",
  "nll_loss",
  "log_odds_ratio",
  "log_odds_chosen",
] as const;

/** Order of the metric slots of {@link Ops.ktoLoss} (sums, turned into TRL's means on read). */
export const KTO_METRICS = [
  "loss",
  "kl",
  "rewards/chosen_sum",
  "rewards/rejected_sum",
  "logps/chosen_sum",
  "logps/rejected_sum",
  "count/chosen",
  "count/rejected",
] as const;
