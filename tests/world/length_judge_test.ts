import assert from "node:assert/strict";
import { lengthBiasedScore, relabelByLength } from "../../src/world/length_judge.ts";

Deno.test("the length judge adds its bonus per completion token to the true score", () => {
  assert.equal(lengthBiasedScore(" good .", "the food was", 0), 1);
  assert.ok(Math.abs(lengthBiasedScore(" good .", "the food was", 0.2) - 1.4) < 1e-12);
  // The prompt's open negator still flips the completion's first sentiment word.
  assert.ok(Math.abs(lengthBiasedScore(" good", "the food was not", 0.5) - -0.5) < 1e-12);
});

Deno.test("relabelling reverses pairs the bonus outweighs, drops ties, measures the length ratio", () => {
  const rows = [
    // true order kept: 1 + 2·0.2 = 1.4 against 0 + 3·0.2 = 0.6
    { prompt: "the soup was", chosen: " great .", rejected: " served hot ." },
    // reversed: 1 + 0.4 against 0 + 9·0.2 = 1.8
    {
      prompt: "the food was",
      chosen: " good .",
      rejected: " fine , and we went there for lunch .",
    },
    // tie: 1 + 0.4 against 0 + 7·0.2 = 1.4
    { prompt: "it was", chosen: " nice .", rejected: " on the window near the train ." },
  ];
  const r = relabelByLength(rows, 0.2);
  assert.equal(r.flipped, 1);
  assert.equal(r.ties, 1);
  assert.deepEqual(r.pairs, [
    rows[0],
    { prompt: "the food was", chosen: rows[1].rejected, rejected: rows[1].chosen },
  ]);
  assert.ok(Math.abs(r.lengthRatio - (2 + 9) / (3 + 2)) < 1e-12);
  const none = relabelByLength(rows, 0);
  assert.equal(none.flipped, 0);
  assert.equal(none.pairs.length, 3);
  assert.throws(() => relabelByLength(rows, -1), /length bonus/);
});
