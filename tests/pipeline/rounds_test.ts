import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import { runRounds } from "../../src/pipeline/iterative.ts";
import { WORLD_REWARD } from "../../src/eval/reward_fn.ts";

const store = new DenoFileStore();
const root = new URL("../../", import.meta.url).pathname;

async function tinyRun(outputDir: string, rule?: { kind: "rso"; beta: number; accepted: number }) {
  const backend = new CpuBackend("f32");
  const results = await runRounds(store, backend, {
    model: `${root}data/base`,
    prompts: `${root}data/prompts_eval.jsonl`,
    outputDir,
    rounds: rule ? 1 : 2,
    samplesPerPrompt: rule ? 6 : 3,
    maxNewTokens: 6,
    beta: 0.5,
    lossType: rule ? "hinge" : "sigmoid",
    rule,
    reward: WORLD_REWARD,
    tokenOptions: { maxLength: 64, maxPromptLength: 32 },
    optimizer: { lr: 1e-3 },
    loop: { batchSize: 8, maxSteps: 1, loggingSteps: 1, seed: 5 },
  }, { stage: () => ({}) });
  backend.destroy();
  return results;
}

Deno.test("iterative DPO runs 2 rounds end to end, bit-identical on rerun, skipped when done", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-rounds-" });
  try {
    const a = await tinyRun(`${dir}/a`);
    const b = await tinyRun(`${dir}/b`);
    assert.equal(a.length, 2);
    assert.ok(a[0].label.pairs > 0 && a[1].label.pairs > 0);
    const hash = async (r: typeof a) =>
      sha256Hex(await store.readFile(`${r[1].policy}/model.safetensors`));
    assert.equal(await hash(a), await hash(b));
    const rows = (await store.readText(`${dir}/a/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual([...new Set(rows.map((r) => r.round))], [1, 2]);
    const again = await tinyRun(`${dir}/a`);
    assert.ok(again.every((r) => r.label.skipped));
    assert.equal(await hash(again), await hash(a));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RSO runs one round with the hinge loss on rejection-sampled pairs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-rso-" });
  try {
    const [r] = await tinyRun(`${dir}/rso`, { kind: "rso", beta: 0.5, accepted: 2 });
    assert.ok(r.label.pairs > 0 && r.label.pairs <= 64);
    assert.ok(await store.exists(`${r.policy}/model.safetensors`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
