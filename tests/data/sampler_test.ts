import assert from "node:assert/strict";
import { BatchSampler, seededPermutation } from "../../src/data/sampler.ts";

Deno.test("seededPermutation is a permutation and depends only on the seed", () => {
  const a = seededPermutation(50, 7);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(seededPermutation(50, 7), a);
  assert.notDeepEqual(seededPermutation(50, 8), a);
});

Deno.test("seededPermutation is uniform: each of the 6 orders of 3 items about 1/6 of seeds", () => {
  // A Fisher-Yates shuffle; an off-by-one (j < i, Sattolo's) gives only the 2 cyclic orders, and
  // a biased swap skews the counts. 6000 seeds: each count ~ 1000 ± 29 (one standard deviation).
  const counts = new Map<string, number>();
  for (let seed = 0; seed < 6000; seed++) {
    const key = seededPermutation(3, seed).join("");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ["012", "021", "102", "120", "201", "210"]);
  for (const [order, n] of counts) assert.ok(n > 850 && n < 1150, `${order}: ${n} of 6000`);
});

Deno.test("BatchSampler covers every example once per epoch and reshuffles each epoch", () => {
  const sampler = new BatchSampler(23, { batchSize: 5, seed: 3 });
  assert.equal(sampler.batchesPerEpoch, 5);
  const epoch0 = Array.from({ length: 5 }, (_, k) => sampler.batch(k));
  assert.deepEqual(epoch0.flat().sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
  assert.equal(epoch0[4].length, 3);
  const epoch1 = Array.from({ length: 5 }, (_, k) => sampler.batch(5 + k));
  assert.notDeepEqual(epoch1, epoch0);
});

Deno.test("a sampler resumed at step k gives the same batches as the uninterrupted run", () => {
  const lengths = Array.from({ length: 40 }, (_, i) => (i * 37) % 17 + 1);
  const options = { batchSize: 4, seed: 11, groupByLength: true, megaBatchMultiplier: 3 };
  const full = new BatchSampler(lengths, options);
  const uninterrupted = Array.from({ length: 25 }, (_, k) => full.batch(k));
  const resumed = new BatchSampler(lengths, options);
  for (let k = 13; k < 25; k++) assert.deepEqual(resumed.batch(k), uninterrupted[k]);
});

Deno.test("length grouping batches similar lengths and puts the longest batch first", () => {
  const lengths = Array.from({ length: 64 }, (_, i) => (i * 29) % 64 + 1);
  const sampler = new BatchSampler(lengths, {
    batchSize: 4,
    seed: 5,
    groupByLength: true,
    megaBatchMultiplier: 16,
  });
  const batches = sampler.epoch(0);
  assert.ok(batches[0].includes(lengths.indexOf(64)));
  // Within a mega-batch lengths are sorted, so each batch spans a narrow range.
  const spread = batches.map((b) =>
    Math.max(...b.map((i) => lengths[i])) - Math.min(...b.map((i) => lengths[i]))
  );
  assert.ok(spread.every((s) => s <= 3), `spreads ${spread}`);
  assert.deepEqual(batches.flat().sort((a, b) => a - b), Array.from({ length: 64 }, (_, i) => i));
});

Deno.test("dropLast drops the incomplete batch and shuffle false keeps file order", () => {
  const sampler = new BatchSampler(10, { batchSize: 4, dropLast: true, shuffle: false });
  assert.equal(sampler.batchesPerEpoch, 2);
  assert.deepEqual(sampler.batch(0), [0, 1, 2, 3]);
  assert.deepEqual(sampler.batch(3), [4, 5, 6, 7]);
});
