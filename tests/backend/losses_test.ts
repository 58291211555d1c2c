/**
 * The preference losses as pure functions: DESIGN.md's golden values, hand-computed values of
 * every type, gradients against central finite differences (float64), weighted sums, KTO.
 */

import assert from "node:assert/strict";
import { assertClose } from "../helpers.ts";
import { PREFERENCE_LOSS_TYPES, type PreferenceLossType } from "../../src/backend/mod.ts";
import {
  needsReference,
  preferenceLoss,
  type PreferenceLossOptions,
  resolveLossSpec,
  type WinRates,
} from "../../src/backend/losses.ts";
import { ktoLoss, ktoWeightWarning, resolveKtoSpec } from "../../src/backend/kto_loss.ts";

Deno.test("per-pair DPO losses match DESIGN.md's golden values", () => {
  const r = preferenceLoss([-0.5, -10, -1], [-0.1, -30, -21], [-0.5, -10.1, -0.1], [
    -0.1,
    -20.1,
    -0.1,
  ], { beta: 0.1 });
  assertClose(r.losses, [0.6931, 0.3133, 0.1269], { atol: 1e-4, rtol: 0, label: "losses" });
});

Deno.test("the DPO loss is ln 2 with zero rewards when policy equals reference", () => {
  const r = preferenceLoss([-3, -7], [-2, -9], [-3, -7], [-2, -9]);
  assertClose(r.losses, [Math.LN2, Math.LN2], { atol: 1e-12 });
  assert.deepEqual(r.chosenRewards, [0, 0]);
});

// One pair: policy (-10, -30), reference (-10.1, -20.1), 4 and 10 tokens, beta 0.1; so
// s_w = 0.1, s_l = -9.9, delta = 10. Values computed by hand from each paper's formula.
const PAIR = [[-10], [-30], [-10.1], [-20.1]] as const;
const TOKENS = { chosenTokens: [4], rejectedTokens: [10] };
const HAND: Array<[PreferenceLossType, PreferenceLossOptions & WinRates, number]> = [
  ["sigmoid", {}, 0.31326169], // -log σ(1)
  ["sigmoid", { labelSmoothing: 0.1 }, 0.41326169], // -0.9 log σ(1) - 0.1 log σ(-1)
  ["robust", { labelSmoothing: 0.1 }, 0.18826169], // (0.9·0.3133 + 0.1·log σ(-1)) / 0.8
  ["hinge", {}, 0], // max(0, 1 - 1)
  ["ipo", { ipoLengthNormalized: false }, 25], // (10 - 5)^2
  ["ipo", {}, 15.880225], // (0.1/4 + 9.9/10 - 5)^2
  ["exo_pair", {}, 1.27630984], // ε = 1e-3
  ["nca_pair", {}, 1.19521999],
  ["bco_pair", {}, 1.00412063],
  ["sppo_hard", {}, 48.02], // (0.1 - 5)^2 + (-9.9 + 5)^2
  // SPPO's soft form, the mean of the two squares: ((0.1 - 0.3/0.1)^2 + (-9.9 + 0.2/0.1)^2) / 2.
  ["sppo", { chosenWinRates: [0.8], rejectedWinRates: [0.3] }, 35.41],
  // Hard win-rates (1, 0): half of sppo_hard, (4.9^2 + 4.9^2) / 2.
  ["sppo", { chosenWinRates: [1], rejectedWinRates: [0] }, 24.01],
  // Both completions win more than half the time: both log-ratios are pulled up.
  ["sppo", { chosenWinRates: [0.5], rejectedWinRates: [0.75] }, 76.885], // (0.1^2 + 12.4^2) / 2
  ["apo_zero", {}, 0.76841210],
  ["apo_down", {}, 0.77144140],
  ["discopop", {}, 0.36787944], // modulation σ(20) ≈ 1: exp(-1)
  ["sigmoid_norm", {}, 0.64368441],
  ["sft", {}, 2.5], // 10 / 4
  ["simpo", {}, 0.94324895], // -log σ(0.1·(-2.5 + 3) - 0.5)
  ["orpo", {}, 2.54611613],
  ["sigmoid", { rdpoAlpha: 0.01 }, 0.32975533], // -log σ(1 + 0.01·(4 − 10)): R-DPO's plus sign
  ["aot", {}, 0.31326169], // one pair: sorting changes nothing
  ["aot_unpaired", {}, 0.31326169],
];

for (const [type, extra, expected] of HAND) {
  Deno.test(`${type} ${JSON.stringify(extra)} equals the hand-computed value`, () => {
    const r = preferenceLoss(...PAIR, { lossType: type, beta: 0.1, ...TOKENS, ...extra });
    assertClose(r.losses, [expected], { atol: 1e-7, rtol: 1e-7 });
  });
}

/** A batch with distinct margins (no AOT ties) and varied lengths. */
const BATCH = {
  pc: [-4.2, -7.5, -1.3, -12.1, -3.3],
  pr: [-5.1, -6.0, -2.9, -10.5, -8.8],
  rc: [-4.0, -7.9, -1.15, -11.2, -4.0],
  rr: [-4.6, -6.6, -3.45, -10.9, -7.7],
  chosenTokens: [3, 7, 1, 12, 4],
  rejectedTokens: [5, 6, 2, 9, 11],
  chosenWinRates: [0.9, 0.55, 0.7, 1, 0.6],
  rejectedWinRates: [0.1, 0.45, 0.65, 0, 0.2],
};

function meanLoss(pc: number[], pr: number[], o: PreferenceLossOptions): number {
  const r = preferenceLoss(pc, pr, BATCH.rc, BATCH.rr, { ...o, ...BATCH });
  return r.losses.reduce((a, b) => a + b, 0) / r.losses.length;
}

function checkGradient(o: PreferenceLossOptions): void {
  const r = preferenceLoss(BATCH.pc, BATCH.pr, BATCH.rc, BATCH.rr, { ...o, ...BATCH });
  const h = 1e-5;
  for (const side of ["pc", "pr"] as const) {
    const numeric = BATCH[side].map((_, i) => {
      const plus = { ...BATCH }, minus = { ...BATCH };
      plus[side] = BATCH[side].map((v, j) => (j === i ? v + h : v));
      minus[side] = BATCH[side].map((v, j) => (j === i ? v - h : v));
      return (meanLoss(plus.pc, plus.pr, o) - meanLoss(minus.pc, minus.pr, o)) / (2 * h);
    });
    assertClose(side === "pc" ? r.dChosen : r.dRejected, numeric, {
      atol: 1e-7,
      rtol: 1e-5,
      label: `${JSON.stringify(o)} d/d${side}`,
    });
  }
}

for (const lossType of PREFERENCE_LOSS_TYPES) {
  Deno.test(`${lossType}: gradient w.r.t. the log-probs matches finite differences`, () => {
    checkGradient({ lossType, beta: 0.3, labelSmoothing: 0.1 });
  });
}

for (
  const o of [
    { fDivergenceType: "forward_kl" },
    { fDivergenceType: "js_divergence" },
    { fDivergenceType: "alpha_divergence", fAlphaDivergenceCoef: 0.3 },
    { referenceFree: true },
    { rdpoAlpha: 0.05 },
    { ipoLengthNormalized: false },
  ] as PreferenceLossOptions[]
) {
  Deno.test(`options ${JSON.stringify(o)}: gradients match finite differences`, () => {
    for (const lossType of ["sigmoid", "ipo", "nca_pair", "apo_down", "exo_pair"] as const) {
      checkGradient({ ...o, lossType, beta: 0.2 });
    }
  });
}

Deno.test("sppo: gradients match finite differences with f-divergences and in a list", () => {
  checkGradient({ lossType: "sppo", beta: 0.2, fDivergenceType: "js_divergence" });
  checkGradient({ lossType: "sppo", beta: 0.2, fDivergenceType: "forward_kl" });
  checkGradient({ lossType: ["sigmoid", "sppo"], lossWeights: [1, 0.5], beta: 0.2 });
});

Deno.test("sppo: d/ds_w is s_w − (P̂_w − 1/2)/β over the pairs, by hand", () => {
  // s_w = 0.1, s_l = -9.9, β 0.1, P̂ (0.8, 0.3): a = -2.9, b = -7.9; one pair, so d = a, b.
  const r = preferenceLoss(...PAIR, {
    lossType: "sppo",
    beta: 0.1,
    chosenWinRates: [0.8],
    rejectedWinRates: [0.3],
  });
  assertClose([r.dChosen[0], r.dRejected[0]], [-2.9, -7.9], { atol: 1e-12 });
});

Deno.test("sppo without win-rates is refused, saying what to give", () => {
  assert.throws(() => preferenceLoss(...PAIR, { lossType: "sppo" }), /chosenWinRates/);
  assert.throws(
    () => preferenceLoss(...PAIR, { lossType: ["sigmoid", "sppo"], lossWeights: [1, 1] }),
    /win-rates/,
  );
});

Deno.test("a weighted list of losses equals the weighted sum of each, gradients too", () => {
  const types = ["sigmoid", "sft", "ipo"] as const;
  const weights = [1, 0.5, 0.25];
  const args = [BATCH.pc, BATCH.pr, BATCH.rc, BATCH.rr] as const;
  const sum = preferenceLoss(...args, { lossType: types, lossWeights: weights, ...BATCH });
  const each = types.map((t) => preferenceLoss(...args, { lossType: t, ...BATCH }));
  const combine = (pick: (r: typeof sum) => number[]) =>
    pick(each[0]).map((_, i) => each.reduce((s, r, k) => s + weights[k] * pick(r)[i], 0));
  assertClose(sum.losses, combine((r) => r.losses), { atol: 1e-12, label: "losses" });
  assertClose(sum.dChosen, combine((r) => r.dChosen), { atol: 1e-12, label: "dChosen" });
  assertClose(sum.dRejected, combine((r) => r.dRejected), { atol: 1e-12, label: "dRejected" });
});

Deno.test("simpo, orpo and sft need no reference; referenceFree turns any loss into one", () => {
  assert.equal(needsReference(resolveLossSpec({ lossType: ["simpo"] })), false);
  assert.equal(needsReference(resolveLossSpec({ lossType: ["orpo", "sft"] })), false);
  assert.equal(needsReference(resolveLossSpec({ lossType: ["simpo", "sigmoid"] })), true);
  assert.equal(needsReference(resolveLossSpec({ lossType: "ipo", referenceFree: true })), false);
  const a = preferenceLoss([-3], [-5], [1e9], [-1e9], { lossType: "simpo" });
  const b = preferenceLoss([-3], [-5], [0], [0], { lossType: "simpo" });
  assert.deepEqual(a.losses, b.losses);
});

Deno.test("bad loss options are refused with the reason", () => {
  assert.throws(
    () => resolveLossSpec({ lossType: ["sigmoid", "sft"], lossWeights: [1] }),
    /2 loss/,
  );
  assert.throws(() => resolveLossSpec({ lossType: ["aot", "aot_unpaired"] }), /one of them/);
  assert.throws(() => resolveLossSpec({ lossType: "nope" as PreferenceLossType }), /unknown/);
});

Deno.test("sigmoid and summed IPO keep their golden values at DPO logits 10", () => {
  const at10 = (lossType: "sigmoid" | "ipo") =>
    preferenceLoss([10], [0], [0], [0], { lossType, beta: 0.1, ipoLengthNormalized: false });
  assertClose([at10("sigmoid").losses[0]], [0.31326169], { atol: 1e-7 });
  assertClose([at10("ipo").losses[0], at10("ipo").dChosen[0]], [25, 10]);
});

Deno.test("KTO: z0 is the clamped mean KL, losses and gradients are hand-computed", () => {
  // policy - reference: examples (0.5, -1.0), mismatched pairs (0.2, 0.6): z0 = 0.4.
  const r = ktoLoss([-2.5, -4], [-5.8, -6.4], [-3, -3], [-6, -7], [true, false], {
    beta: 0.5,
    desirableWeight: 1,
    undesirableWeight: 2,
  });
  assertClose([r.kl], [0.4], { atol: 1e-12 });
  const s = (x: number) => 1 / (1 + Math.exp(-x));
  const q0 = s(0.5 * (0.5 - 0.4)), q1 = s(0.5 * (0.4 + 1.0));
  assertClose(r.losses, [1 - q0, 2 * (1 - q1)], { atol: 1e-12 });
  // d/dr of w(1 - σ(β u)) is -wβσ'(βu)·du/dr, du/dr = +1 (desirable) or -1; mean over 2.
  assertClose(r.grads, [-0.5 * q0 * (1 - q0) / 2, 2 * 0.5 * q1 * (1 - q1) / 2], { atol: 1e-12 });
  const negative = ktoLoss([-3], [-9], [-3], [-6], [true]);
  assert.equal(negative.kl, 0, "a negative KL estimate is clamped at 0");
  assertClose(negative.losses, [0.5], { atol: 1e-12 });
});

Deno.test("KTO's gradient matches finite differences; apo_zero_unpaired ignores z0", () => {
  const labels = [true, false, true];
  const pol = [-2.1, -3.3, -0.7], kl = [-4, -5, -6], ref = [-2, -3, -1], refKl = [-4.5, -5.5, -5];
  for (const lossType of ["kto", "apo_zero_unpaired"] as const) {
    const r = ktoLoss(pol, kl, ref, refKl, labels, { lossType, beta: 0.7 });
    const mean = (p: number[]) => {
      const x = ktoLoss(p, kl, ref, refKl, labels, { lossType, beta: 0.7 }).losses;
      return x.reduce((a, b) => a + b, 0) / x.length;
    };
    const numeric = pol.map((_, i) =>
      (mean(pol.map((v, j) => v + (i === j ? 1e-6 : 0))) -
        mean(pol.map((v, j) => v - (i === j ? 1e-6 : 0)))) / 2e-6
    );
    assertClose(r.grads, numeric, { atol: 1e-8, rtol: 1e-5, label: lossType });
  }
  assert.equal(ktoLoss(pol, kl, ref, refKl, labels, { lossType: "apo_zero_unpaired" }).kl, 0);
});

Deno.test("KTO warns like TRL when the weights do not balance the labels", () => {
  const spec = resolveKtoSpec();
  assert.equal(ktoWeightWarning(10, 10, spec), undefined);
  assert.match(ktoWeightWarning(30, 10, spec)!, /--undesirable-weight in \[2\.26, 3\]/);
  assert.equal(ktoWeightWarning(30, 10, { ...spec, undesirableWeight: 2.5 }), undefined);
});
