import assert from "node:assert/strict";
import { collatePreference, collateSft, collateUnpaired } from "../../src/data/collate.ts";

const golden = [
  { promptIds: [1, 2, 3], chosenIds: [4, 5], rejectedIds: [6] },
  { promptIds: [7, 8], chosenIds: [9, 10], rejectedIds: [11, 12, 13] },
];

function rowsOf(array: ArrayLike<number>, T: number): number[][] {
  return Array.from(
    { length: array.length / T },
    (_, r) => Array.from(array).slice(r * T, (r + 1) * T),
  );
}

Deno.test("collatePreference reproduces the golden example of DESIGN.md", () => {
  const batch = collatePreference(golden, { padTokenId: 0 });
  assert.equal(batch.T, 5);
  assert.equal(batch.rows, 4);
  assert.equal(batch.pairs, 2);
  assert.deepEqual(rowsOf(batch.inputIds, 5), [
    [1, 2, 3, 4, 5],
    [7, 8, 9, 10, 0],
    [1, 2, 3, 6, 0],
    [7, 8, 11, 12, 13],
  ]);
  assert.deepEqual(rowsOf(batch.completionMask, 5), [
    [0, 0, 0, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 0, 0, 1, 0],
    [0, 0, 1, 1, 1],
  ]);
  assert.deepEqual(rowsOf(batch.attentionMask, 5), [
    [1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0],
    [1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1],
  ]);
});

Deno.test("collatePreference targets are the next completion token and -1 elsewhere", () => {
  const batch = collatePreference(golden, { padTokenId: 0 });
  assert.deepEqual(rowsOf(batch.targets, 5), [
    [-1, -1, 4, 5, -1],
    [-1, 9, 10, -1, -1],
    [-1, -1, 6, -1, -1],
    [-1, 11, 12, 13, -1],
  ]);
  assert.deepEqual([...batch.tokenCounts], [2, 2, 1, 3]);
  assert.deepEqual([...batch.lengths], [5, 4, 4, 5]);
  assert.ok(batch.inputIds instanceof Int32Array && batch.targets instanceof Int32Array);
});

Deno.test("collatePreference pads T up to padToMultipleOf with the pad id", () => {
  const batch = collatePreference(golden, { padTokenId: 99, padToMultipleOf: 4 });
  assert.equal(batch.T, 8);
  assert.deepEqual(rowsOf(batch.inputIds, 8)[1], [7, 8, 9, 10, 99, 99, 99, 99]);
  assert.deepEqual(rowsOf(batch.targets, 8)[3], [-1, 11, 12, 13, -1, -1, -1, -1]);
});

Deno.test("collateSft gives the same arrays, and an empty prompt predicts from the second token", () => {
  const batch = collateSft([
    { promptIds: [], completionIds: [5, 6, 7] },
    { promptIds: [1], completionIds: [8] },
  ], { padTokenId: 0 });
  assert.equal(batch.T, 3);
  assert.deepEqual(rowsOf(batch.inputIds, 3), [[5, 6, 7], [1, 8, 0]]);
  assert.deepEqual(rowsOf(batch.targets, 3), [[6, 7, -1], [8, -1, -1]]);
  assert.deepEqual(rowsOf(batch.completionMask, 3), [[1, 1, 1], [0, 1, 0]]);
  assert.deepEqual([...batch.tokenCounts], [2, 1]);
});

Deno.test("collateUnpaired carries the labels", () => {
  const batch = collateUnpaired([
    { promptIds: [1], completionIds: [2], label: true },
    { promptIds: [1], completionIds: [3], label: false },
  ], { padTokenId: 0 });
  assert.deepEqual([...batch.labels], [1, 0]);
});
