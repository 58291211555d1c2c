/**
 * The win-rate labelling of SPPO rounds (src/pipeline/label.ts `sampleWinRates`): each sample's
 * mean preference over the prompt's other samples, by the Bradley-Terry probability of the
 * rewards or by the module's own `prefer`, against hand computations.
 */

import assert from "node:assert/strict";
import { sampleWinRates } from "../../src/pipeline/label.ts";
import { winRatePair } from "../../src/eval/labelling.ts";
import { RewardError, type RewardModule } from "../../src/eval/reward_fn.ts";

const s = (x: number) => 1 / (1 + Math.exp(-x));
const samples = [
  { completion: "a", reward: 0.5 },
  { completion: "b", reward: -1 },
  { completion: "c", reward: 1.5 },
];
const rewardOnly: RewardModule = { source: "test", reward: () => 0 };

Deno.test("win-rates of K samples by Bradley-Terry: mean over the others, by hand", async () => {
  const w = await sampleWinRates(rewardOnly, 0, "p", samples);
  const expected = [
    (s(1.5) + s(-1)) / 2, // a: vs b (0.5 - -1), vs c (0.5 - 1.5)
    (s(-1.5) + s(-2.5)) / 2,
    (s(1) + s(2.5)) / 2,
  ];
  w.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-15, `sample ${i}`));
  // The pair: c (highest) against b (lowest), with their rates.
  assert.deepEqual(winRatePair(w), {
    chosen: 2,
    rejected: 1,
    chosenWinRate: expected[2],
    rejectedWinRate: expected[1],
  });
});

Deno.test("a module's own prefer is asked about every ordered pair, in order", async () => {
  const asked: string[] = [];
  // A judge that is not symmetric: prefers the alphabetically earlier text 0.9, later 0.2.
  const judge: RewardModule = {
    source: "judge",
    reward: () => 0,
    prefer: (_p, a, b) => {
      asked.push(a + b);
      return a < b ? 0.9 : 0.2;
    },
  };
  const w = await sampleWinRates(judge, 3, "p", samples);
  assert.deepEqual(asked, ["ab", "ac", "ba", "bc", "ca", "cb"]);
  assert.deepEqual(w, [0.9, (0.2 + 0.9) / 2, 0.2]);
});

Deno.test("a judge's bad probability stops the labelling, naming the prompt", async () => {
  const bad: RewardModule = { source: "bad", reward: () => 0, prefer: () => 1.5 };
  await assert.rejects(
    () => sampleWinRates(bad, 7, "p", samples),
    (e: Error) => e instanceof RewardError && e.promptIndex === 7 && /\[0, 1\]/.test(e.message),
  );
});
