/**
 * The three-action bandit of the IPO paper (Azar et al. 2024, §5.1; DESIGN.md): actions a, b, c,
 * preferences {(a,b), (b,c), (a,c)}, a uniform reference, a softmax policy π = softmax(θ)
 * optimised directly with the pure loss functions (no model). IPO with τ = 0.5 converges to its
 * closed form π = (0.563, 0.289, 0.148); DPO heads to the deterministic corner π(a) → 1 for every
 * β, the overfitting IPO was designed to fix.
 */

import assert from "node:assert/strict";
import { assertClose } from "../helpers.ts";
import { preferenceLoss, type PreferenceLossOptions } from "../../src/backend/losses.ts";

const PAIRS = [[0, 1], [1, 2], [0, 2]] as const; // (winner, loser): a > b, b > c, a > c
const REFERENCE = Math.log(1 / 3);

function softmax(theta: number[]): number[] {
  const m = Math.max(...theta);
  const e = theta.map((t) => Math.exp(t - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Gradient descent on θ; returns π after each of `steps` steps. */
function train(options: PreferenceLossOptions, lr: number, steps: number): number[][] {
  const theta = [0, 0, 0];
  const history: number[][] = [];
  const refs = PAIRS.map(() => REFERENCE);
  for (let step = 0; step < steps; step++) {
    const pi = softmax(theta);
    const logPi = pi.map(Math.log);
    const r = preferenceLoss(
      PAIRS.map(([w]) => logPi[w]),
      PAIRS.map(([, l]) => logPi[l]),
      refs,
      refs,
      options,
    );
    // d log π_k / d θ_j = [k = j] - π_j.
    const grad = [0, 0, 0];
    PAIRS.forEach(([w, l], p) => {
      for (let j = 0; j < 3; j++) {
        grad[j] += r.dChosen[p] * ((w === j ? 1 : 0) - pi[j]);
        grad[j] += r.dRejected[p] * ((l === j ? 1 : 0) - pi[j]);
      }
    });
    for (let j = 0; j < 3; j++) theta[j] -= lr * grad[j];
    history.push(softmax(theta));
  }
  return history;
}

Deno.test("IPO on the three-action bandit converges to the closed form (tau = 0.5)", () => {
  // The minimiser has log-ratio gaps θa - θb = θb - θc = 2/3 (least squares of three targets 1).
  const pi = train({ lossType: "ipo", beta: 0.5, ipoLengthNormalized: false }, 0.5, 2000).at(-1)!;
  assertClose(pi, [0.563, 0.289, 0.148], { atol: 5e-4, rtol: 0, label: "pi" });
  const gaps = Math.exp(2 / 3);
  const exact = softmax([0, -Math.log(gaps), -2 * Math.log(gaps)]);
  assertClose(pi, exact, { atol: 1e-6, rtol: 0, label: "closed form" });
});

Deno.test("DPO on the same data heads to the deterministic corner pi(a) -> 1 for every beta", () => {
  for (const beta of [0.1, 0.5, 1, 2]) {
    const history = train({ lossType: "sigmoid", beta }, 8 / (beta * beta), 5000);
    const pa = history.map((pi) => pi[0]);
    for (let t = 1; t < pa.length; t++) {
      assert.ok(pa[t] >= pa[t - 1], `beta ${beta}: pi(a) fell at step ${t}`);
    }
    assert.ok(pa.at(-1)! > 0.99, `beta ${beta}: pi(a) = ${pa.at(-1)} after 5000 steps`);
    assert.ok(history.at(-1)![2] < 1e-3, `beta ${beta}: pi(c) = ${history.at(-1)![2]}`);
  }
});
