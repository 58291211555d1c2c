/**
 * The frontier and the final evaluation on the tiny world: every method yields a point per
 * evaluation (step 0 included), and the pipeline's eval stage writes eval.json and report.html.
 */

import { sentimentReward } from "../../src/world/reward.ts";
import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { runFrontier } from "../../src/pipeline/frontier.ts";
import { runPipeline } from "../../src/pipeline/pipeline.ts";
import { makeTinyWorld, store } from "./tiny_world.ts";

async function promptsFile(dir: string): Promise<string> {
  const path = `${dir}/prompts.jsonl`;
  const prompts = ["the sky is", "hello", "what color", "the world is"];
  await Deno.writeTextFile(path, prompts.map((prompt) => JSON.stringify({ prompt })).join("\n"));
  return path;
}

/**
 * The tiny world on the f32 CPU backend, with the reference cache of its pairs at ref.bin;
 * disposing it removes the world's folder.
 */
async function cachedTinyWorld() {
  const w = await makeTinyWorld(8);
  const backend = new CpuBackend("f32");
  await runPrecompute(store, backend, {
    model: w.base,
    data: { path: w.prefs },
    output: `${w.dir}/ref.bin`,
  });
  return { w, backend, [Symbol.asyncDispose]: w[Symbol.asyncDispose] };
}

Deno.test("the frontier task gives a point per evaluation for each method", async () => {
  await using world = await cachedTinyWorld();
  const { w, backend } = world;
  const points = await runFrontier(store, backend, {
    sftModel: w.base,
    preferenceData: w.prefs,
    refCache: `${w.dir}/ref.bin`,
    prompts: await promptsFile(w.dir),
    reward: sentimentReward,
    outputDir: `${w.dir}/frontier`,
    methods: [{ method: "dpo", beta: 0.1 }, { method: "preferred-ft" }],
    optimizer: { lr: 1e-2, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 2, evalSteps: 1, loggingSteps: 1 },
    maxNewTokens: 4,
  });
  assert.deepEqual(points.map((p) => `${p.method}:${p.step}`), [
    "DPO:0",
    "DPO:1",
    "DPO:2",
    "Preferred-FT:0",
    "Preferred-FT:1",
    "Preferred-FT:2",
  ]);
  for (const p of points) assert.ok(Number.isFinite(p.reward) && Number.isFinite(p.kl));
  assert.ok(Math.abs(points[0].kl) < 1e-6, "at step 0 the policy is the reference: KL 0");
  const html = await Deno.readTextFile(`${w.dir}/frontier/report.html`);
  assert.match(html, /data-chart="frontier"/);
  const svg = await Deno.readTextFile(`${w.dir}/frontier/frontier.svg`);
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, "a standalone SVG file");
  assert.match(svg, /Preferred-FT/);
});

Deno.test("frontier runs can be named, take any preference loss and their own pairs", async () => {
  await using world = await cachedTinyWorld();
  const { w, backend } = world;
  // The same pairs with chosen and rejected swapped, and their own cache.
  const swapped = `${w.dir}/swapped.jsonl`;
  const rows = (await Deno.readTextFile(w.prefs)).split("\n").filter((l) => l.trim())
    .map((l) => JSON.parse(l)).map((r) => ({ ...r, chosen: r.rejected, rejected: r.chosen }));
  await Deno.writeTextFile(swapped, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  await runPrecompute(store, backend, {
    model: w.base,
    data: { path: swapped },
    output: `${w.dir}/swapped.bin`,
  });
  const options = {
    sftModel: w.base,
    preferenceData: w.prefs,
    refCache: `${w.dir}/ref.bin`,
    prompts: await promptsFile(w.dir),
    reward: sentimentReward,
    outputDir: `${w.dir}/length`,
    optimizer: { lr: 1e-2, schedule: "constant" as const },
    loop: { batchSize: 4, maxSteps: 1, evalSteps: 1, loggingSteps: 1 },
    maxNewTokens: 4,
  };
  const points = await runFrontier(store, backend, {
    ...options,
    methods: [
      {
        method: "dpo",
        beta: 0.1,
        name: "R-DPO",
        loss: { rdpoAlpha: 0.2 },
        data: { preferenceData: swapped, refCache: `${w.dir}/swapped.bin` },
      },
      { method: "dpo", beta: 2, name: "SimPO", loss: { lossType: "simpo", simpoGamma: 1 } },
    ],
  });
  assert.deepEqual(points.map((p) => `${p.method} β=${p.beta}:${p.step}`), [
    "R-DPO β=0.1:0",
    "R-DPO β=0.1:1",
    "SimPO β=2:0",
    "SimPO β=2:1",
  ]);
  for (const p of points) assert.ok(Number.isFinite(p.length) && p.length! > 0);
  const html = await Deno.readTextFile(`${w.dir}/length/report.html`);
  assert.match(html, /data-chart="length"/);
  assert.match(await Deno.readTextFile(`${w.dir}/length/length.svg`), /^<svg[^>]*>.*SimPO/s);
  await Deno.stat(`${w.dir}/length/r-dpo-beta0.1/metrics.jsonl`);
  // A run's own pairs are checked against its own cache.
  await assert.rejects(
    runFrontier(store, backend, {
      ...options,
      methods: [{
        method: "dpo",
        beta: 0.1,
        data: { preferenceData: swapped, refCache: `${w.dir}/ref.bin` },
      }],
    }),
    /ref\.bin does not fit this run/,
  );
});

Deno.test("the pipeline ends with an evaluation table and report.html", async () => {
  await using w = await makeTinyWorld();
  const spec = {
    baseModel: w.base,
    sftData: w.sft,
    preferenceData: w.prefs,
    preferenceEvalData: w.prefsEval,
    runDir: `${w.dir}/run`,
    sft: { optimizer: { lr: 1e-2 }, loop: { batchSize: 4, maxSteps: 1 } },
    dpo: {
      optimizer: { lr: 1e-2 },
      loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1 },
      beta: 0.1,
    },
    evalPrompts: await promptsFile(w.dir),
    reward: sentimentReward,
    eval: { seeds: [0, 1], maxNewTokens: 4 },
  };
  const result = await runPipeline(store, new CpuBackend("f32"), spec, { stage: () => ({}) });
  const table = result.eval!.comparison!.evalTable;
  assert.deepEqual(table.rows.map((r) => r.model), ["SFT", "DPO"]);
  const evaluation = JSON.parse(await Deno.readTextFile(`${w.dir}/run/eval/eval.json`));
  assert.equal(evaluation.SFT.kl, 0);
  assert.ok(Number.isFinite(evaluation.DPO.kl) && evaluation.DPO.rewardBySeed.length === 2);
  const html = await Deno.readTextFile(`${w.dir}/run/dpo/report.html`);
  for (const chart of ["loss", "rewards", "logps"]) {
    assert.match(html, new RegExp(`data-chart="${chart}"`));
  }
  const again = await runPipeline(store, new CpuBackend("f32"), spec, { stage: () => ({}) });
  assert.equal(again.eval!.skipped, true);
});
