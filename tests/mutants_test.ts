/**
 * `deno task mutants` (tasks/mutants.ts): every listed snippet still matches the source, the
 * list spans the rooms, a stale entry fails loudly, a harmless mutation is reported as SURVIVED,
 * and a seeded handful of the real mutants is killed (the whole list runs with the task).
 */

import assert from "node:assert/strict";
import {
  applyMutation,
  checkMutations,
  firstFailure,
  runMutants,
  selectMutations,
  StaleMutationError,
} from "../tasks/mutants.ts";
import { type Mutation, MUTATIONS } from "../tasks/mutants_list.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The seeded handful CI runs (their tests take about a minute together on 2 cores). */
const CI_SEED = 17, CI_COUNT = 3;

Deno.test("every mutation's snippet occurs in its file as often as the list says", async () => {
  await checkMutations(ROOT, MUTATIONS);
});

Deno.test("the mutations span the backends, the model, the losses, data, cache and io", () => {
  assert.ok(MUTATIONS.length >= 25, `${MUTATIONS.length} mutations`);
  const rooms = new Set(MUTATIONS.map((m) => m.file.split("/")[1]));
  for (const room of ["gpu", "cpu", "model", "backend", "train", "data", "cache", "io"]) {
    assert.ok(rooms.has(room), `no mutation in src/${room}`);
  }
  assert.equal(new Set(MUTATIONS.map((m) => m.name)).size, MUTATIONS.length, "unique names");
});

Deno.test("a snippet that is missing or occurs another number of times fails loudly", () => {
  const m: Mutation = { name: "x", file: "f.ts", find: "a + b", replace: "a - b", tests: ["t"] };
  assert.equal(applyMutation("return a + b;", m), "return a - b;");
  assert.throws(() => applyMutation("return a * b;", m), StaleMutationError);
  assert.throws(
    () => applyMutation("a + b; a + b;", m),
    (e: Error) => e instanceof StaleMutationError && /2 time\(s\), the list says 1/.test(e.message),
  );
  assert.equal(applyMutation("a + b; a + b;", { ...m, count: 2 }), "a - b; a - b;");
});

Deno.test("--seed and --count pick a reproducible subset in list order", () => {
  const a = selectMutations(MUTATIONS, { seed: 5, count: 4 });
  assert.deepEqual(a, selectMutations(MUTATIONS, { seed: 5, count: 4 }));
  assert.equal(a.length, 4);
  assert.notDeepEqual(a, selectMutations(MUTATIONS, { seed: 6, count: 4 }));
  const index = a.map((m) => MUTATIONS.indexOf(m));
  assert.deepEqual(index, [...index].sort((x, y) => x - y));
  assert.equal(selectMutations(MUTATIONS).length, MUTATIONS.length);
});

Deno.test("the killing test is read from Deno's failure report, with its own file", () => {
  const report = "running 1 test from ./tests/a_test.ts\nbar ... ok (1ms)\n" +
    "running 2 tests from ./tests/gpu/b_test.ts\nbaz ... ok (1ms)\nfoo ... FAILED (3ms)\n" +
    "\n ERRORS \n\nfoo => ./tests/helpers.ts:24:8\nerror: x\n\n FAILURES \n\n" +
    "foo => ./tests/helpers.ts:24:8\n\nFAILED | 2 passed | 1 failed\n";
  assert.equal(firstFailure(report), "tests/gpu/b_test.ts: foo");
  assert.equal(firstFailure("ok | 3 passed | 0 failed"), undefined);
});

Deno.test("a mutation no test notices is reported as SURVIVED", async () => {
  const harmless: Mutation = {
    name: "a comment changed",
    file: "src/io/hash.ts",
    find: "digest() wants a BufferSource",
    replace: "digest() takes a BufferSource",
    tests: ["tests/io/hash_test.ts"],
  };
  const [result] = await runMutants([harmless], { root: ROOT });
  assert.deepEqual(result, {
    name: "a comment changed",
    file: "src/io/hash.ts",
    killed: false,
    by: "SURVIVED",
  });
});

Deno.test("a seeded handful of mutants is killed (deno task mutants --seed --count)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}/tasks/mutants.ts`,
      "--seed",
      String(CI_SEED),
      "--count",
      String(CI_COUNT),
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const results = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(results.length, CI_COUNT, stderr);
  for (const r of results) {
    assert.deepEqual(Object.keys(r).sort(), ["by", "file", "killed", "name"]);
    assert.ok(r.killed, `${r.name} (${r.file}) survived`);
  }
  assert.equal(out.code, 0, stderr);
});
