import assert from "node:assert/strict";
import {
  bestWorstPair,
  onlinePair,
  rankedPairs,
  rsoAccept,
  winRatePair,
  winRates,
} from "../../src/eval/labelling.ts";
import { bradleyTerry } from "../../src/eval/reward_fn.ts";
import { seededRandom } from "../../src/data/sampler.ts";

Deno.test("bestWorstPair takes the first best against the first worst", () => {
  assert.deepEqual(bestWorstPair([0.2, 0.9, 0.1, 0.9, 0.1]), { chosen: 1, rejected: 2 });
  assert.deepEqual(bestWorstPair([3, -1]), { chosen: 0, rejected: 1 });
});

Deno.test("bestWorstPair drops a prompt whose rewards all tie", () => {
  assert.equal(bestWorstPair([0.5, 0.5, 0.5]), undefined);
  assert.equal(bestWorstPair([0.5]), undefined);
});

/** A fixed list of uniform draws, consumed in order. */
function draws(us: number[]) {
  let k = 0;
  return () => {
    if (k >= us.length) throw new Error("more draws than expected");
    return us[k++];
  };
}

Deno.test("rsoAccept follows Algorithm 1 of Liu et al. on a hand-worked case", () => {
  // rewards 1.0, 0.8, 0.2 at beta 0.5: acceptance exp((r - 1)/0.5) = 1, e^-0.4 = 0.670, e^-1.6 = 0.202.
  // Pass 1: u = 0.9 < 1 accepts 0; u = 0.7 >= 0.670 rejects 1; u = 0.1 < 0.202 accepts 2.
  // Pass 2 (pool {1}, r_max 0.8): exp(0) = 1 accepts 1 with u = 0.99.
  const rewards = [1.0, 0.8, 0.2];
  assert.deepEqual(rsoAccept(rewards, 0.5, 3, draws([0.9, 0.7, 0.1, 0.99])), [0, 2, 1]);
  // Asking for 2 stops at the second acceptance without drawing further.
  assert.deepEqual(rsoAccept(rewards, 0.5, 2, draws([0.9, 0.7, 0.1])), [0, 2]);
  // u just above exp(-0.4) rejects, just below accepts.
  const edge = Math.exp(-0.4);
  assert.deepEqual(rsoAccept(rewards, 0.5, 2, draws([0.5, edge - 1e-9])), [0, 1]);
  assert.deepEqual(rsoAccept(rewards, 0.5, 2, draws([0.5, edge, 0.99, 0.99])), [0, 1]);
});

Deno.test("rsoAccept at a small beta accepts the best first; at a large beta it keeps the order", () => {
  const rewards = [0.1, 0.9, 0.5, 0.3];
  const random = seededRandom(7);
  for (let t = 0; t < 100; t++) assert.equal(rsoAccept(rewards, 1e-3, 1, random)[0], 1);
  // exp((r - r_max)/β) -> 1: every candidate passes, in the order they were sampled.
  for (let t = 0; t < 100; t++) assert.deepEqual(rsoAccept(rewards, 1e6, 2, random), [0, 1]);
  // Asking for more than K returns all K.
  assert.deepEqual([...rsoAccept(rewards, 0.1, 9, random)].sort(), [0, 1, 2, 3]);
});

Deno.test("rankedPairs pairs consecutive accepted samples by reward, dropping ties", () => {
  // (0, 2): 0.3 < 0.7 -> 2 wins; (1, 3): 0.9 = 0.9 tie, dropped.
  assert.deepEqual(rankedPairs([0, 2, 1, 3], [0.3, 0.9, 0.7, 0.9]), [{ chosen: 2, rejected: 0 }]);
  assert.deepEqual(rankedPairs([0, 1], [0.1, 0.6]), [{ chosen: 1, rejected: 0 }]);
});

Deno.test("winRates are the mean Bradley-Terry preference over the K samples", () => {
  const r = [1, 0, 2];
  const prefer = r.map((a) => r.map((b) => bradleyTerry(a, b)));
  const w = winRates(prefer);
  const s = (x: number) => 1 / (1 + Math.exp(-x));
  assert.ok(Math.abs(w[0] - (0.5 + s(1) + s(-1)) / 3) < 1e-15);
  assert.ok(Math.abs(w[1] - (s(-1) + 0.5 + s(-2)) / 3) < 1e-15);
  assert.ok(Math.abs(w[2] - (s(1) + s(2) + 0.5) / 3) < 1e-15);
  // Win-rates of a BT judge over all K average to 1/2.
  assert.ok(Math.abs((w[0] + w[1] + w[2]) / 3 - 0.5) < 1e-15);
});

Deno.test("onlinePair chooses the higher of two rewards; a tie is dropped or the first chosen (TRL)", () => {
  assert.deepEqual(onlinePair(0.2, 0.7), { chosen: 1, rejected: 0 });
  assert.deepEqual(onlinePair(0.9, -3), { chosen: 0, rejected: 1 });
  assert.equal(onlinePair(0.5, 0.5), undefined);
  assert.equal(onlinePair(0.5, 0.5, "drop"), undefined);
  assert.deepEqual(onlinePair(0.5, 0.5, "first"), { chosen: 0, rejected: 1 });
  assert.deepEqual(onlinePair(1, 2, "first"), { chosen: 1, rejected: 0 });
});

Deno.test("winRates against the others leave the diagonal out: mean over K−1, by hand", () => {
  const r = [1, 0, 2];
  const prefer = r.map((a) => r.map((b) => bradleyTerry(a, b)));
  prefer[0][0] = prefer[1][1] = prefer[2][2] = 99; // never read
  const w = winRates(prefer, { against: "others" });
  const s = (x: number) => 1 / (1 + Math.exp(-x));
  assert.ok(Math.abs(w[0] - (s(1) + s(-1)) / 2) < 1e-15);
  assert.ok(Math.abs(w[1] - (s(-1) + s(-2)) / 2) < 1e-15);
  assert.ok(Math.abs(w[2] - (s(1) + s(2)) / 2) < 1e-15);
  // (K−1)/K · others + 1/(2K) is the all-K estimate.
  const all = winRates(r.map((a) => r.map((b) => bradleyTerry(a, b))));
  w.forEach((x, i) => assert.ok(Math.abs((2 / 3) * x + 1 / 6 - all[i]) < 1e-15));
  assert.throws(() => winRates([[0.5]], { against: "others" }), /K >= 2/);
});

Deno.test("winRatePair takes the highest win-rate against the lowest, with both rates", () => {
  assert.deepEqual(winRatePair([0.4, 0.7, 0.2, 0.7]), {
    chosen: 1,
    rejected: 2,
    chosenWinRate: 0.7,
    rejectedWinRate: 0.2,
  });
  assert.equal(winRatePair([0.5, 0.5, 0.5]), undefined);
});
