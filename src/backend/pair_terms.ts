/**
 * The per-pair terms of every preference loss and their derivatives with respect to the policy's
 * two sequence log-probs, in float64. src/gpu/kernels/loss.ts mirrors `pairTerm` in WGSL; the
 * notation is that of src/backend/losses.ts.
 *
 * @module
 */

import type { PreferenceLossSpec, PreferenceLossType } from "./loss_spec.ts";

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

/**
 * One pair's sequence log-probs (reference 0 when reference-free), token counts (≥ 1) and, for
 * `sppo`, the estimated win-rates P̂(y ≻ π_t | x) of its two completions (in [0, 1]).
 */
export interface PairInput {
  policyChosen: number;
  policyRejected: number;
  referenceChosen: number;
  referenceRejected: number;
  chosenTokens: number;
  rejectedTokens: number;
  chosenWinRate?: number;
  rejectedWinRate?: number;
}

/** One loss term of a pair and its gradient w.r.t. the policy's chosen and rejected log-probs. */
export interface PairTerm {
  loss: number;
  dChosen: number;
  dRejected: number;
  /** ORPO only: log σ(log-odds) and the log-odds of chosen over rejected. */
  logOddsRatio?: number;
  logOdds?: number;
}

/** AOT's sorted partners: the margin of this pair's chosen and rejected terms (see sortedPartners). */
export interface AotDeltas {
  chosenDelta: number;
  rejectedDelta: number;
}

/** f(s) and f'(s): the f-divergence scores of TRL's DPOTrainer (Wang et al. 2023). */
export function fScore(spec: PreferenceLossSpec, s: number): [number, number] {
  switch (spec.fDivergenceType) {
    case "reverse_kl":
      return [s, 1];
    case "forward_kl":
      return [-Math.exp(-s), Math.exp(-s)];
    case "js_divergence":
      return [logSigmoid(s), sigmoid(-s)];
    case "alpha_divergence": {
      const a = spec.fAlphaDivergenceCoef;
      if (Math.abs(a - 1) < 1e-6) return [s, 1];
      // exp((α-1) s) / (α-1), with the exponent clamped at 80 as TRL does (no gradient there).
      const t = (a - 1) * s;
      const e = Math.exp(Math.min(t, 80));
      return [e / (a - 1), t > 80 ? 0 : e];
    }
  }
}

/** A margin loss ℓ(z) and dℓ/dz: the sigmoid family, hinge, EXO and DiscoPOP. */
function marginLoss(
  type: PreferenceLossType,
  z: number,
  spec: PreferenceLossSpec,
): [number, number] {
  const eps = spec.labelSmoothing;
  switch (type) {
    case "robust": // Chowdhury et al. 2024, eq. 10: unbiased under label-flip rate ε.
      return [
        ((1 - eps) * -logSigmoid(z) + eps * logSigmoid(-z)) / (1 - 2 * eps),
        (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1 - 2 * eps),
      ];
    case "hinge": // SLiC (Zhao et al. 2023).
      return z < 1 ? [1 - z, -1] : [0, 0];
    case "exo_pair": { // Ji et al. 2024, eq. 16: KL(p_θ ‖ p_ε) over {chosen, rejected}.
      const e = eps === 0 ? 1e-3 : eps;
      const q = sigmoid(z);
      const a = Math.log1p(-e), b = Math.log(e);
      return [
        q * (logSigmoid(z) - a) + (1 - q) * (logSigmoid(-z) - b),
        q * (1 - q) * (z - a + b),
      ];
    }
    case "discopop": { // Lu et al. 2024, eq. 5: logistic/exponential blend.
      const tau = spec.discopopTau;
      const m = sigmoid(z / tau);
      const logistic = -logSigmoid(z), exponential = Math.exp(-z);
      return [
        logistic * (1 - m) + exponential * m,
        -sigmoid(-z) * (1 - m) - exponential * m + (exponential - logistic) * m * (1 - m) / tau,
      ];
    }
    default: // sigmoid (DPO eq. 7; cDPO with ε), simpo, aot.
      return [
        -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z),
        -(1 - eps) * sigmoid(-z) + eps * sigmoid(z),
      ];
  }
}

/** log(-expm1(a)) = log(1 - e^a) for a < 0, accurate near 0. */
function log1mExp(a: number): number {
  return a > -Math.LN2 ? Math.log(-Math.expm1(a)) : Math.log1p(-Math.exp(a));
}

/**
 * One loss term of one pair. `aot` is required for the AOT types (from {@link sortedPartners}).
 */
export function pairTerm(
  type: PreferenceLossType,
  x: PairInput,
  spec: PreferenceLossSpec,
  aot?: AotDeltas,
): PairTerm {
  const { beta } = spec;
  const nw = x.chosenTokens, nl = x.rejectedTokens;
  const chosenLogRatio = x.policyChosen - x.referenceChosen;
  const rejectedLogRatio = x.policyRejected - x.referenceRejected;
  const [sw, dsw] = fScore(spec, chosenLogRatio);
  const [sl, dsl] = fScore(spec, rejectedLogRatio);
  const delta = sw - sl;
  switch (type) {
    case "sigmoid":
    case "robust":
    case "hinge":
    case "exo_pair":
    case "discopop": {
      // R-DPO (Park et al. 2024): with a length penalty α|y| in the RLHF objective the preference
      // becomes σ(βΔ + α(|y_w| − |y_l|)): length explains part of a longer chosen's win, so the
      // policy is pushed less towards it.
      const z = beta * delta + spec.rdpoAlpha * (nw - nl);
      const [loss, dz] = marginLoss(type, z, spec);
      return { loss, dChosen: dz * beta * dsw, dRejected: -dz * beta * dsl };
    }
    case "ipo":
    case "sigmoid_norm": {
      // IPO (Azar et al. 2024, eq. 17, τ = β), per-token by default as TRL; sigmoid_norm: DPO
      // on per-token log-ratios (the length-normalised DPO of Tülu 3).
      const norm = type === "sigmoid_norm" || spec.ipoLengthNormalized;
      const u = norm ? sw / nw - sl / nl : delta;
      const [du_w, du_l] = norm ? [dsw / nw, -dsl / nl] : [dsw, -dsl];
      if (type === "ipo") {
        const g = 2 * (u - 1 / (2 * beta));
        return { loss: (u - 1 / (2 * beta)) ** 2, dChosen: g * du_w, dRejected: g * du_l };
      }
      const g = -beta * sigmoid(-beta * u);
      return { loss: -logSigmoid(beta * u), dChosen: g * du_w, dRejected: g * du_l };
    }
    case "nca_pair": { // Chen et al. 2024 (NCA), pairwise form.
      const a = beta * sw, b = beta * sl;
      return {
        loss: -logSigmoid(a) - 0.5 * logSigmoid(-a) - 0.5 * logSigmoid(-b),
        dChosen: beta * dsw * (-sigmoid(-a) + 0.5 * sigmoid(a)),
        dRejected: beta * dsl * 0.5 * sigmoid(b),
      };
    }
    case "bco_pair": { // Jung et al. 2024 (BCO), paired, without the running reward shift.
      const a = beta * sw, b = beta * sl;
      return {
        loss: -logSigmoid(a) - logSigmoid(-b),
        dChosen: -beta * dsw * sigmoid(-a),
        dRejected: beta * dsl * sigmoid(b),
      };
    }
    case "sppo_hard": { // Wu et al. 2024 (SPPO), eq. 4.7 with hard probabilities.
      const a = sw - 0.5 / beta, b = sl + 0.5 / beta;
      return { loss: a * a + b * b, dChosen: 2 * a * dsw, dRejected: 2 * b * dsl };
    }
    case "sppo": {
      // Wu et al. 2024, eq. 4.7 with the soft win-rates P̂ of both completions, η = 1/β, as the
      // authors' code (uclaml/SPPO, sppo/trainer.py, loss_type "sppo") writes it: the mean of the
      // two squared terms (so win-rates (1, 0) give half of sppo_hard, TRL's sum).
      if (x.chosenWinRate === undefined || x.rejectedWinRate === undefined) {
        throw new RangeError("loss sppo needs the win-rates of both completions of every pair");
      }
      const a = sw - (x.chosenWinRate - 0.5) / beta, b = sl - (x.rejectedWinRate - 0.5) / beta;
      return { loss: (a * a + b * b) / 2, dChosen: a * dsw, dRejected: b * dsl };
    }
    case "aot":
    case "aot_unpaired": { // Melnyk et al. 2024: DPO on the sorted (optimal-transport) margins.
      const [lossC, dzC] = marginLoss("sigmoid", beta * aot!.chosenDelta, spec);
      const [, dzR] = marginLoss("sigmoid", beta * aot!.rejectedDelta, spec);
      return { loss: lossC, dChosen: beta * dzC, dRejected: -beta * dzR };
    }
    case "apo_zero": { // D'Oosterlinck et al. 2024 (APO), eq. 7: raw log-ratios.
      const qc = sigmoid(beta * chosenLogRatio), qr = sigmoid(beta * rejectedLogRatio);
      return {
        loss: 1 - qc + qr,
        dChosen: -beta * qc * (1 - qc),
        dRejected: beta * qr * (1 - qr),
      };
    }
    case "apo_down": { // APO eq. 8: push chosen down, rejected further.
      const qc = sigmoid(beta * chosenLogRatio), qd = sigmoid(beta * delta);
      return {
        loss: qc + 1 - qd,
        dChosen: beta * qc * (1 - qc) - beta * qd * (1 - qd) * dsw,
        dRejected: beta * qd * (1 - qd) * dsl,
      };
    }
    case "sft": // Per-token NLL of the chosen completion (RPO = sigmoid + weighted sft).
      return { loss: -x.policyChosen / nw, dChosen: -1 / nw, dRejected: 0 };
    case "simpo": { // Meng et al. 2024, eq. 6: reference-free, per-token, target margin γ.
      const u = x.policyChosen / nw - x.policyRejected / nl;
      const [loss, dz] = marginLoss("sigmoid", beta * u - spec.simpoGamma, spec);
      return { loss, dChosen: dz * beta / nw, dRejected: -dz * beta / nl };
    }
    case "orpo": { // Hong et al. 2024, eq. 6-7: NLL + λ·(-log σ(log odds)), λ = beta.
      const aw = x.policyChosen / nw, al = x.policyRejected / nl;
      const logOdds = (aw - al) - (log1mExp(aw) - log1mExp(al));
      const ratio = logSigmoid(logOdds);
      const g = beta * sigmoid(-logOdds);
      return {
        loss: -aw - beta * ratio,
        dChosen: (-1 - g / -Math.expm1(aw)) / nw,
        dRejected: (g / -Math.expm1(al)) / nl,
        logOddsRatio: ratio,
        logOdds,
      };
    }
  }
}

/** Stable rank of each value (ties by index), the order torch.sort gives. */
function ranks(values: number[]): number[] {
  return values.map((v, i) =>
    values.reduce((r, w, j) => r + (w < v || (w === v && j < i) ? 1 : 0), 0)
  );
}

/**
 * AOT's pairing within the batch: `aot` sorts the policy's and the reference's log-ratio margins
 * and pairs them by rank; `aot_unpaired` sorts the chosen and the rejected log-ratios. Returns,
 * per pair, the margin of the sorted term its chosen and its rejected value land in.
 */
export function sortedPartners(
  spec: PreferenceLossSpec,
  pairs: PairInput[],
): AotDeltas[] | undefined {
  if (spec.lossTypes.includes("aot")) {
    const a = pairs.map((x) => x.policyChosen - x.policyRejected);
    const b = pairs.map((x) => x.referenceChosen - x.referenceRejected);
    const sortedB: number[] = [];
    ranks(b).forEach((r, j) => sortedB[r] = b[j]);
    return ranks(a).map((r, i) => ({
      chosenDelta: a[i] - sortedB[r],
      rejectedDelta: a[i] - sortedB[r],
    }));
  }
  if (spec.lossTypes.includes("aot_unpaired")) {
    const c = pairs.map((x) => x.policyChosen - x.referenceChosen);
    const r = pairs.map((x) => x.policyRejected - x.referenceRejected);
    const rc = ranks(c), rr = ranks(r);
    const sortedC: number[] = [], sortedR: number[] = [];
    rc.forEach((k, i) => sortedC[k] = c[i]);
    rr.forEach((k, i) => sortedR[k] = r[i]);
    return pairs.map((_, i) => ({
      chosenDelta: c[i] - sortedR[rc[i]],
      rejectedDelta: sortedC[rr[i]] - r[i],
    }));
  }
  return undefined;
}

/** Rewards are per-token (CPO/ORPO's convention) when SimPO or ORPO is the first listed loss. */
export function usesPerTokenRewards(spec: PreferenceLossSpec): boolean {
  return spec.lossTypes[0] === "simpo" || spec.lossTypes[0] === "orpo";
}
