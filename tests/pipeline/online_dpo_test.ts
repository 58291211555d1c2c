import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { type OnlineDpoOptions, runOnlineDpo } from "../../src/pipeline/online_dpo.ts";
import { type RewardModule, WORLD_REWARD } from "../../src/eval/reward_fn.ts";
import { gpuTest } from "../helpers.ts";
import { loadReward } from "../../tasks/_reward.ts";

const store = new DenoFileStore();
const root = new URL("../../", import.meta.url).pathname;

/** A tiny run from the embedded base model: 4 prompts a step, 6 tokens a sample. */
function tinyRun(
  backend: Backend,
  outputDir: string,
  extra: Partial<OnlineDpoOptions> = {},
  loop: Partial<OnlineDpoOptions["loop"]> = {},
  signal?: AbortSignal,
  onStep?: (step: number) => void,
) {
  return runOnlineDpo(store, backend, {
    model: `${root}data/base`,
    prompts: `${root}data/prompts_eval.jsonl`,
    outputDir,
    reward: WORLD_REWARD,
    maxNewTokens: 6,
    beta: 0.5,
    optimizer: { lr: 1e-3 },
    ...extra,
    loop: { batchSize: 4, maxSteps: 3, loggingSteps: 1, seed: 7, ...loop },
  }, { signal, onStep });
}

const weightsHash = async (dir: string) =>
  sha256Hex(await store.readFile(`${dir}/model.safetensors`));
const readRows = async (dir: string) =>
  (await store.readText(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => {
    const { tokens_per_s: _t, ...row } = JSON.parse(l);
    return row;
  });

async function endToEnd(backend: Backend) {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-" });
  try {
    const a = await tinyRun(backend, `${dir}/a`);
    const b = await tinyRun(backend, `${dir}/b`);
    assert.equal(a.skipped, false);
    assert.equal(await weightsHash(a.policy), await weightsHash(b.policy));
    const rows = await readRows(a.policy);
    assert.deepEqual(rows, await readRows(b.policy));
    assert.deepEqual(rows.map((r) => r.step), [1, 2, 3]);
    for (const row of rows) {
      assert.ok(Number.isFinite(row.loss), `loss of step ${row.step}`);
      assert.equal(row.pairs + row.tied, 4, "ties are dropped by default");
      if (row.pairs > 0) assert.ok(row["scores/chosen"] > row["scores/rejected"]);
      assert.ok(row.sampled_tokens > 0 && row.sampled_tokens <= 8 * 6);
      assert.ok(row["objective/entropy"] > 0, "the samples' negative log-likelihood");
    }
    // Step 1 starts at policy = reference: the sigmoid loss is ln 2 on the fresh pairs.
    if (rows[0].pairs > 0) assert.ok(Math.abs(rows[0].loss - Math.LN2) < 1e-5, `${rows[0].loss}`);
    assert.notEqual(
      await weightsHash(a.policy),
      await weightsHash(`${root}data/base`),
      "the policy trained",
    );
    const again = await tinyRun(backend, `${dir}/a`);
    assert.equal(again.skipped, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("online DPO runs end to end on the CPU backend, bit-identical on rerun", async () => {
  const backend = new CpuBackend("f32");
  await endToEnd(backend);
  backend.destroy();
});

gpuTest("online DPO runs end to end on WebGPU, bit-identical on rerun", endToEnd);

Deno.test("online DPO resumed after a stop at step 3 equals the uninterrupted run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-resume-" });
  const backend = new CpuBackend("f32");
  try {
    const loop = { maxSteps: 4, saveSteps: 2 };
    const full = await tinyRun(backend, `${dir}/full`, {}, loop);
    const stop = new AbortController();
    await assert.rejects(
      tinyRun(backend, `${dir}/cut`, {}, loop, stop.signal, (s) => s === 3 && stop.abort()),
    );
    assert.ok(await store.exists(`${dir}/cut/checkpoint-2/trainer_state.json`));
    assert.ok(!await store.exists(`${dir}/cut/model.safetensors`));
    const resumed = await tinyRun(backend, `${dir}/cut`, { resume: true }, loop);
    assert.equal(await weightsHash(resumed.policy), await weightsHash(full.policy));
    assert.deepEqual(await readRows(resumed.policy), await readRows(full.policy));
  } finally {
    backend.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one online step labels each prompt's two samples by their rewards", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-label-" });
  const backend = new CpuBackend("f32");
  // A reward with many ties (the word count), recording what it was asked.
  const calls: Array<{ prompt: string; completion: string; reward: number }> = [];
  const reward: RewardModule = {
    source: "test:word-count",
    reward: (prompt, completion) => {
      const r = completion.trim().split(/\s+/).filter(Boolean).length;
      calls.push({ prompt, completion, reward: r });
      return r;
    },
  };
  try {
    const prompts = (await store.readText(`${root}data/prompts_eval.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l).prompt as string);
    for (const ties of ["drop", "first"] as const) {
      calls.length = 0;
      const { rows } = await tinyRun(backend, `${dir}/${ties}`, { reward, ties }, { maxSteps: 1 });
      // The step asked for 2 × 4 rewards: samples 1 of the batch's prompts, then samples 2.
      assert.equal(calls.length, 8);
      const P = 4;
      for (let j = 0; j < P; j++) {
        assert.equal(calls[j].prompt, calls[P + j].prompt);
        assert.ok(prompts.includes(calls[j].prompt));
      }
      // The hand labelling: the higher reward is chosen; a tie is dropped or the first chosen.
      const chosen: number[] = [], rejected: number[] = [];
      let tied = 0;
      for (let j = 0; j < P; j++) {
        const [a, b] = [calls[j].reward, calls[P + j].reward];
        if (a === b) tied++;
        if (a === b && ties === "drop") continue;
        chosen.push(Math.max(a, b));
        rejected.push(Math.min(a, b));
      }
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
      const row = rows[0];
      assert.equal(row.pairs, chosen.length);
      assert.equal(row.tied, tied);
      assert.equal(row["objective/scores"], mean(calls.map((c) => c.reward)));
      if (chosen.length > 0) {
        assert.equal(row["scores/chosen"], mean(chosen));
        assert.equal(row["scores/rejected"], mean(rejected));
        assert.equal(row["objective/scores_margin"], mean(chosen.map((c, i) => c - rejected[i])));
      }
    }
  } finally {
    backend.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reward module's own prefer() labels the pairs (the shorter preferred here)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-prefer-" });
  const backend = new CpuBackend("f32");
  try {
    // async_reward.ts: reward = prompt + completion length, prefer = the shorter completion.
    const reward = await loadReward(`${root}tests/fixtures/rewards/async_reward.ts`);
    const { rows } = await tinyRun(backend, `${dir}/p`, { reward }, { maxSteps: 2 });
    const labelled = rows.filter((r) => r.pairs > 0);
    assert.ok(labelled.length > 0);
    for (const r of labelled) {
      assert.ok(r["scores/chosen"] < r["scores/rejected"], `step ${r.step}`);
    }
  } finally {
    backend.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

async function task(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-webgpu", "-A", `${root}tasks/online_dpo.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("deno task online-dpo stops with exit 1 naming the prompt whose reward is NaN", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-bad-" });
  try {
    const prompts = ["the room was", "the pool felt", "the soup was", "the staff seemed"];
    await Deno.writeTextFile(`${dir}/prompts.txt`, prompts.join("\n") + "\n");
    const { code, stderr } = await task([
      "--model",
      `${root}data/base`,
      "--prompts",
      `${dir}/prompts.txt`,
      "--output-dir",
      `${dir}/out`,
      "--reward",
      `${root}tests/fixtures/rewards/nan_reward.ts`,
      "--device",
      "cpu",
      "--per-device-train-batch-size",
      "4",
      "--max-steps",
      "1",
      "--max-new-tokens",
      "4",
    ]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /returned NaN on prompt 2\b/);
    assert.ok(!await store.exists(`${dir}/out/model.safetensors`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task online-dpo trains a user's model with a user's reward module", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-user-" });
  try {
    const { code, stderr } = await task([
      ...["--model", `${root}data/base`, "--prompts", `${root}data/prompts_eval.jsonl`],
      ...["--output-dir", `${dir}/out`, "--device", "cpu", "--max-new-tokens", "6"],
      ...["--reward", `${root}tests/fixtures/rewards/length_reward.ts`, "--loss-type", "ipo"],
      ...["--per-device-train-batch-size", "4", "--max-steps", "2", "--logging-steps", "1"],
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /online-dpo: \d+ pairs/);
    const rows = await readRows(`${dir}/out`);
    assert.deepEqual(rows.map((r) => r.step), [1, 2]);
    // IPO at policy = reference: (0 - 1/(2β))² = 25 with the default β 0.1.
    if (rows[0].pairs > 0) assert.ok(Math.abs(rows[0].loss - 25) < 1e-3, `${rows[0].loss}`);
    const manifest = JSON.parse(await store.readText(`${dir}/out/manifest.json`));
    assert.match(JSON.stringify(manifest), /length_reward\.ts/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task online-dpo refuses --use-peft with exit 2 and says why", async () => {
  const { code, stderr } = await task(["--use-peft", "--model", "x"]);
  assert.equal(code, 2);
  assert.match(stderr, /--use-peft: .*LoRA adapters/);
});

Deno.test("deno task online-dpo answers --help (exit 0) and refuses a bad --ties (exit 2)", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-webgpu", "-A", `${root}tasks/online_dpo.ts`, "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  for (const flag of ["--reward", "--ties drop|first", "--loss-type", "--resume", "--save-steps"]) {
    assert.ok(text.includes(flag), `--help lists ${flag}`);
  }
  const bad = await task(["--ties", "maybe", "--model", "x"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--ties/);
});
