/**
 * SPPO in rounds end to end on the embedded base model (CPU backend): two tiny rounds whose pairs
 * carry win-rates, whose reference is the previous round's policy (cached per round), trained
 * with the sppo loss; bit-identical on rerun, skipped when done, and a removed round redone.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import { type RoundHooks, runRounds } from "../../src/pipeline/iterative.ts";
import type { LoopOptions } from "../../src/pipeline/loop.ts";
import { readCache } from "../../src/cache/columns.ts";
import { WORLD_REWARD } from "../../src/eval/reward_fn.ts";
import { BatchSampler } from "../../src/data/sampler.ts";
import { makeTinyWorld } from "./tiny_world.ts";

const store = new DenoFileStore();
const root = new URL("../../", import.meta.url).pathname;

async function sppoRun(
  outputDir: string,
  more: { loop?: LoopOptions; resume?: boolean; hooks?: RoundHooks } = {},
) {
  const backend = new CpuBackend("f32");
  const results = await runRounds(store, backend, {
    model: `${root}data/base`,
    prompts: `${root}data/prompts_eval.jsonl`,
    outputDir,
    rounds: 2,
    refUpdate: "round",
    samplesPerPrompt: 3,
    maxNewTokens: 6,
    beta: 0.5,
    lossType: "sppo",
    rule: { kind: "win-rate" },
    reward: WORLD_REWARD,
    tokenOptions: { maxLength: 64, maxPromptLength: 32 },
    optimizer: { lr: 1e-3 },
    loop: more.loop ?? { batchSize: 8, maxSteps: 1, loggingSteps: 1, seed: 5 },
    resume: more.resume,
  }, more.hooks ?? { stage: () => ({}) });
  backend.destroy();
  return results;
}

const hash = async (policy: string) =>
  sha256Hex(await store.readFile(`${policy}/model.safetensors`));

Deno.test("SPPO runs 2 rounds on win-rate pairs against the last policy, bit-identical on rerun", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-sppo-" });
  try {
    const a = await sppoRun(`${dir}/a`);
    assert.equal(a.length, 2);
    for (const r of a) {
      const rows = (await store.readText(r.label.pairsFile)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      assert.ok(rows.length > 0);
      for (const row of rows) {
        // Highest win-rate against lowest; a win-rate is a probability.
        assert.ok(row.chosen_win_rate > row.rejected_win_rate, JSON.stringify(row));
        assert.ok(row.rejected_win_rate >= 0 && row.chosen_win_rate <= 1);
      }
    }
    // Round 1's reference is the SFT model, round 2's the policy round 1 trained.
    const ref2 = await readCache(store, `${dir}/a/round-2/ref_cache.bin`);
    assert.equal(ref2.header.reference_source, a[0].policy);
    const ref1 = await readCache(store, `${dir}/a/round-1/ref_cache.bin`);
    assert.equal(ref1.header.reference_source, `${root}data/base`);
    const metrics = (await store.readText(`${dir}/a/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual([...new Set(metrics.map((m) => m.round))], [1, 2]);
    // Policy = reference at each round's first step: the loss is the mean of the targets'
    // squares, ((P̂_w − 1/2)² + (P̂_l − 1/2)²) / (2β²) > 0, and the rewards are 0.
    // Round 2's one step trains the first batch of its pairs (seed 5 + 1).
    const first = metrics.find((m) => m.round === 2 && "loss" in m)!;
    const pairs2 = (await store.readText(a[1].label.pairsFile)).trim().split("\n")
      .map((l) => JSON.parse(l));
    const batch = new BatchSampler(pairs2.length, { batchSize: 8, seed: 6 }).batch(0);
    const target = (p: number) => (Math.fround(p) - 0.5) ** 2;
    const expected = batch.reduce(
      (sum, i) =>
        sum + (target(pairs2[i].chosen_win_rate) + target(pairs2[i].rejected_win_rate)) / 0.5,
      0,
    ) / batch.length;
    assert.ok(Math.abs(first.loss - expected) < 1e-5 * expected, `${first.loss} vs ${expected}`);
    assert.ok(Math.abs(first["rewards/chosen"]) < 1e-6);

    const b = await sppoRun(`${dir}/b`);
    assert.equal(await hash(b[1].policy), await hash(a[1].policy));
    assert.equal(await hash(b[0].policy), await hash(a[0].policy));

    const again = await sppoRun(`${dir}/a`);
    assert.ok(again.every((r) => r.label.skipped));
    assert.equal(await hash(again[1].policy), await hash(a[1].policy));

    // Round granularity: a removed last round is redone from round 1's kept outputs, identically.
    await Deno.remove(`${dir}/a/round-2`, { recursive: true });
    const redone = await sppoRun(`${dir}/a`);
    assert.ok(redone[0].label.skipped && !redone[1].label.skipped);
    assert.equal(await hash(redone[1].policy), await hash(a[1].policy));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SPPO killed inside round 2's training resumes at its checkpoint, bit-identically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-sppo-resume-" });
  const loop = { batchSize: 8, maxSteps: 3, loggingSteps: 1, saveSteps: 1, seed: 5 };
  try {
    const whole = await sppoRun(`${dir}/whole`, { loop });
    const killAt = (round: number, step: number): RoundHooks => ({
      stage: (name, r) =>
        name === "dpo" && r === round
          ? {
            onStep: (s) => {
              if (s === step) throw new Error("killed");
            },
          }
          : {},
    });
    await assert.rejects(sppoRun(`${dir}/killed`, { loop, hooks: killAt(2, 2) }), /killed/);
    assert.ok(await store.exists(`${dir}/killed/round-2/policy/checkpoint-1/trainer_state.json`));
    const said: string[] = [];
    const resumed = await sppoRun(`${dir}/killed`, {
      loop,
      resume: true,
      hooks: { stage: (name, r) => ({ log: (m) => said.push(`${name} ${r}: ${m}`) }) },
    });
    // Round 2's training continued at its step-1 checkpoint, not from the start.
    assert.ok(
      said.some((m) => /^dpo 2: resumed from .*checkpoint-1 at step 1/.test(m)),
      said.join("\n"),
    );
    assert.ok(
      resumed[0].label.skipped && resumed[1].label.skipped,
      "round 1 and round 2's labels kept",
    );
    assert.equal(await hash(resumed[1].policy), await hash(whole[1].policy));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dpo --loss-type sppo on pairs without win-rates is exit 2 naming the row", async () => {
  await using w = await makeTinyWorld();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "-A",
      `${root}tasks/dpo.ts`,
      ...["--model", w.base, "--data", w.prefs, "--loss-type", "sppo"],
      ...["--output-dir", `${w.dir}/out`, "--device", "cpu"],
    ],
    stdout: "piped",
    stderr: "piped",
    env: { DPO_DEBUG: "" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 2, stderr);
  assert.match(stderr, new RegExp(`${w.prefs}:1: loss sppo reads each pair's chosen_win_rate`));
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
});
