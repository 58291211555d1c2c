import assert from "node:assert/strict";
import {
  NEGATIVE_WORDS,
  POSITIVE_WORDS,
  sentimentReward,
  sentimentScore,
  sentimentTokens,
} from "../../src/world/reward.ts";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const near = (actual: number, expected: number, label: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${label}: ${actual} != ${expected}`);

Deno.test("sentimentReward is near 1 for an all-positive completion", () => {
  const text = " the food was great , the staff were lovely and i loved the view . a real gem !";
  assert.equal(sentimentScore(text), 4);
  near(sentimentReward(text), sigmoid(4), "reward");
  assert.ok(sentimentReward(text) > 0.98);
});

Deno.test("sentimentReward is near 0 for an all-negative completion", () => {
  const text =
    " the room was dirty , the waiter was rude and i hated the soup . a total disaster .";
  assert.equal(sentimentScore(text), -4);
  assert.ok(sentimentReward(text) < 0.02);
});

Deno.test("sentimentReward is exactly 0.5 without sentiment words, and for unknown words", () => {
  assert.equal(sentimentReward(" we went there for dinner on friday ."), 0.5);
  assert.equal(sentimentReward(""), 0.5);
  assert.equal(sentimentReward("<eos> <unk> zebra quantum ."), 0.5);
  // Balanced sentiment cancels.
  assert.equal(sentimentReward(" the soup was great but the bread was stale ."), 0.5);
});

Deno.test("a negator flips the next sentiment word only, within its clause", () => {
  assert.equal(sentimentScore("the soup was not great"), -1);
  assert.equal(sentimentScore("the staff was not rude"), 1);
  assert.equal(sentimentScore("i would never recommend this hotel"), -1);
  assert.equal(sentimentScore("i did not like the plot but i loved the ending"), 0);
  // The flip is used up by the first sentiment word.
  assert.equal(sentimentScore("not great great"), 0);
  // A clause boundary closes the scope: "not ." flips nothing.
  assert.equal(sentimentScore("it was not . great"), 1);
  assert.equal(sentimentScore("not , bad"), -1);
  // Two negators cancel.
  assert.equal(sentimentScore("not never good"), 1);
});

Deno.test("an intensifier weighs the next sentiment word 1.5, negated or not", () => {
  assert.equal(sentimentScore("the view was very beautiful"), 1.5);
  assert.equal(sentimentScore("the view was not very beautiful"), -1.5);
  assert.equal(sentimentScore("extremely slow and cold"), -2.5);
  assert.equal(sentimentScore("i would really recommend this"), 1.5);
});

Deno.test("a negator or intensifier open at the end of the prompt carries into the completion", () => {
  assert.equal(sentimentScore(" great", "the soup was not"), -1);
  near(sentimentReward(" great .", "the soup was not"), sigmoid(-1), "carried negation");
  assert.equal(sentimentScore(" awful", "the plot was so"), -1.5);
  // The prompt's own sentiment words never count, and a closed scope does not carry.
  assert.equal(sentimentScore(" the end .", "the soup was great"), 0);
  assert.equal(sentimentScore(" great", "not bad ,"), 1);
});

Deno.test("scoring ignores case and punctuation glued to words", () => {
  assert.deepEqual(sentimentTokens("Great, NOT bad!"), ["great", ",", "not", "bad", "!"]);
  assert.equal(sentimentScore("Great, NOT bad!"), 2);
});

Deno.test("the positive and negative lexicons are disjoint", () => {
  const negative = new Set(NEGATIVE_WORDS);
  assert.deepEqual(POSITIVE_WORDS.filter((word) => negative.has(word)), []);
});
