/** `--shard auto` from the scheduler's environment, and merge refusing bad sets of shards. */

import assert from "node:assert/strict";
import { shardOf } from "../../tasks/_shard.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { decodeCache, mergeCaches, type ReferenceCache } from "../../src/cache/reference_cache.ts";
import { makeTinyWorld, store } from "./tiny_world.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("--shard auto reads JOB_COMPLETION_INDEX or SHARD_INDEX and SHARD_COUNT", () => {
  assert.deepEqual(shardOf("auto", envOf({ JOB_COMPLETION_INDEX: "2", SHARD_COUNT: "4" })), {
    index: 2,
    count: 4,
  });
  assert.deepEqual(shardOf("auto", envOf({ SHARD_INDEX: "0", SHARD_COUNT: "1" })), {
    index: 0,
    count: 1,
  });
  assert.deepEqual(
    shardOf("auto", envOf({ JOB_COMPLETION_INDEX: "1", SHARD_INDEX: "1", SHARD_COUNT: "3" })),
    { index: 1, count: 3 },
  );
  assert.deepEqual(shardOf("1/3", envOf({})), { index: 1, count: 3 });
});

Deno.test("--shard auto refuses missing or inconsistent variables with a UsageError", () => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ SHARD_COUNT: "4" }, /neither JOB_COMPLETION_INDEX .* nor SHARD_INDEX/],
    [{ JOB_COMPLETION_INDEX: "1" }, /SHARD_COUNT is not set/],
    [{ JOB_COMPLETION_INDEX: "1", SHARD_INDEX: "2", SHARD_COUNT: "4" }, /disagree/],
    [{ JOB_COMPLETION_INDEX: "4", SHARD_COUNT: "4" }, /not below SHARD_COUNT=4/],
    [{ SHARD_INDEX: "x", SHARD_COUNT: "4" }, /SHARD_INDEX must be a whole number/],
    [{ SHARD_INDEX: "0", SHARD_COUNT: "0" }, /SHARD_COUNT is not set/],
  ];
  for (const [vars, message] of bad) {
    assert.throws(() => shardOf("auto", envOf(vars)), (e: Error) => {
      assert.equal(e.name, "UsageError");
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => shardOf("3/3", envOf({})), /expected i\/n/);
});

Deno.test("shards merge to the single-pass cache byte for byte; bad shard sets are named", async () => {
  await using w = await makeTinyWorld(10);
  const cpu = () => new CpuBackend("f32");
  const base = { model: w.base, data: { path: w.prefs }, evalData: { path: w.prefsEval } };
  await runPrecompute(store, cpu(), { ...base, output: `${w.dir}/whole.bin` });
  const shards: ReferenceCache[] = [];
  const names = ["s0", "s1", "s2"];
  for (let i = 0; i < 3; i++) {
    const output = `${w.dir}/shard${i}.bin`;
    await runPrecompute(store, cpu(), { ...base, output, shard: { index: i, count: 3 } });
    shards.push(await decodeCache(await store.readFile(output), output));
  }
  const whole = await store.readFile(`${w.dir}/whole.bin`);
  assert.deepEqual(await mergeCaches(shards, names), whole, "merged bytes = one pass");
  assert.equal(new TextDecoder().decode(whole).includes('"created"'), false, "no wall clock");
  await assert.rejects(
    mergeCaches([shards[0], shards[2]], ["s0", "s2"]),
    /examples 4\.\.9 are missing/,
  );
  await assert.rejects(
    mergeCaches([shards[0], shards[1], shards[1], shards[2]], ["s0", "s1", "s1b", "s2"]),
    /s1b duplicates s1/,
  );
  const other = structuredClone(shards[1]);
  other.header.tokenizer_fingerprint = "0".repeat(64);
  await assert.rejects(
    mergeCaches([shards[0], other, shards[2]], ["s0", "odd", "s2"]),
    /odd was built from another reference, dataset or options than s0/,
  );
});
