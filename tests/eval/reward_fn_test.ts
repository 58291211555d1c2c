import assert from "node:assert/strict";
import {
  bradleyTerry,
  preferenceProbability,
  RewardError,
  scoreRewards,
  WORLD_REWARD,
} from "../../src/eval/reward_fn.ts";
import { loadReward } from "../../tasks/_reward.ts";
import { sentimentReward } from "../../src/world/reward.ts";

const fixture = (name: string) => new URL(`../fixtures/rewards/${name}`, import.meta.url).pathname;
const items = [
  { promptIndex: 0, prompt: "the soup was", completion: " cold ." },
  { promptIndex: 1, prompt: "the hotel", completion: " was great and lovely ." },
];

Deno.test("a sync user reward module scores (prompt, completion) in order", async () => {
  const mod = await loadReward(fixture("length_reward.ts"));
  assert.deepEqual(await scoreRewards(mod, items), [2, 5]);
  assert.equal(mod.prefer, undefined);
});

Deno.test("an async reward is awaited and its own prefer() is the judge", async () => {
  const mod = await loadReward(fixture("async_reward.ts"));
  assert.deepEqual(await scoreRewards(mod, items), [12 + 7, 9 + 23]);
  const a = { completion: "short", reward: 1 }, b = { completion: "much longer", reward: 9 };
  assert.equal(await preferenceProbability(mod, 0, "p", a, b), 0.9);
});

Deno.test("without prefer() the judge is Bradley-Terry: sigmoid(r_a - r_b)", async () => {
  const a = { completion: "x", reward: 2 }, b = { completion: "y", reward: 0.5 };
  const p = await preferenceProbability(WORLD_REWARD, 0, "p", a, b);
  assert.equal(p, 1 / (1 + Math.exp(-1.5)));
  assert.equal(bradleyTerry(0.5, 0.5), 0.5);
  assert.ok(Math.abs(bradleyTerry(1, 3) + bradleyTerry(3, 1) - 1) < 1e-15);
});

Deno.test("the world reward module is sentimentReward with the prompt carried in", async () => {
  const [r] = await scoreRewards(WORLD_REWARD, [
    { promptIndex: 0, prompt: "the soup was not", completion: " great" },
  ]);
  assert.equal(r, sentimentReward(" great", "the soup was not"));
  assert.ok(r < 0.5);
});

Deno.test("a throwing reward is reported with the prompt index", async () => {
  const mod = await loadReward(fixture("throwing_reward.ts"));
  await assert.rejects(() => scoreRewards(mod, items), (e: unknown) => {
    assert.ok(e instanceof RewardError);
    assert.equal(e.promptIndex, 1);
    assert.match(e.message, /threw on prompt 1: reward server unavailable/);
    return true;
  });
});

Deno.test("a NaN reward is reported with the prompt index", async () => {
  const mod = await loadReward(fixture("nan_reward.ts"));
  await assert.rejects(() => scoreRewards(mod, items), (e: unknown) => {
    assert.ok(e instanceof RewardError);
    assert.equal(e.promptIndex, 0);
    assert.match(e.message, /returned NaN on prompt 0: it must return a finite number/);
    return true;
  });
});

Deno.test("a module without a default export or that cannot load is a usage error (exit 2)", async () => {
  for (const name of ["no_default.ts", "missing.ts"]) {
    await assert.rejects(() => loadReward(fixture(name)), (e: unknown) => {
      assert.equal((e as Error).name, "UsageError"); // exit 2 in runMain
      assert.match((e as Error).message, /--reward .*(no default export|cannot load)/);
      return true;
    });
  }
});
