/**
 * The loss family end to end (tests/train/direction_test.ts has every loss type's direction): a
 * weighted list steps like its weighted sum; a
 * reference-free loss runs DPO with no cache and no reference model; KTO runs from unpaired
 * data through its cache; on WebGPU the preference and KTO steps match the CPU backend.
 */

import assert from "node:assert/strict";
import { assertClose, gpuTest } from "../helpers.ts";
import { type Backend, resolveKtoSpec } from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import type { Objective } from "../../src/train/trainer.ts";
import { runDpo } from "../../src/pipeline/dpo.ts";
import { runKto } from "../../src/pipeline/kto.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { makeTinyWorld, store } from "./tiny_world.ts";
import { preference, trainKto, trainPairs } from "../train/tiny_pairs.ts";

Deno.test("a weighted list of losses takes the step of the weighted sum", async () => {
  // SGD without clipping: each step is -lr times the gradient, so the list's step must be the
  // weighted sum of its members' steps (a weight dropped from the loss or from its gradient shows).
  const sgd = { kind: "sgd" as const, lr: 0.1 };
  const run = (o: Parameters<typeof preference>[0]) =>
    trainPairs(new CpuBackend("f64"), preference({ beta: 0.5, ...o }), 1, sgd);
  const list = await run({ lossType: ["sigmoid", "sft"], lossWeights: [1, 0.5] });
  const sigmoid = await run({ lossType: "sigmoid" });
  const sft = await run({ lossType: "sft" });
  const step = (r: typeof list) => r.after.map((w, i) => w - r.before[i]);
  const [sumStep, sigmoidStep, sftStep] = [step(list), step(sigmoid), step(sft)];
  const expected = sigmoidStep.map((d, i) => d + 0.5 * sftStep[i]);
  const largest = expected.reduce((m, d) => Math.max(m, Math.abs(d)), 0);
  if (!(largest > 1e-4)) throw new Error(`the step is too small to compare: ${largest}`);
  // The sft term's step is not negligible, so a weight of 1 (or 0) instead of 0.5 shows.
  const sftLargest = sftStep.reduce((m, d) => Math.max(m, Math.abs(d)), 0);
  if (!(sftLargest > 0.1 * largest)) throw new Error(`sft step too small: ${sftLargest}`);
  assertClose(sumStep, expected, { atol: 1e-12 * largest, rtol: 1e-9, label: "step" });
  assertClose([list.rows[0].loss], [sigmoid.rows[0].loss + 0.5 * sft.rows[0].loss], {
    atol: 1e-12,
  });
  assertClose([list.rows[0].nll_loss], [sft.rows[0].nll_loss], { atol: 1e-12 });
});

Deno.test("a reference-free loss runs DPO with no cache and no reference model", async () => {
  await using w = await makeTinyWorld();
  const messages: string[] = [];
  const { rows } = await runDpo(store, new CpuBackend("f32"), {
    model: w.base,
    data: { path: w.prefs },
    evalData: w.prefsEval,
    outputDir: `${w.dir}/simpo`,
    lossType: "simpo",
    beta: 2,
    simpoGamma: 1,
    optimizer: { lr: 1e-2, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1 },
  }, { log: (m) => messages.push(m) });
  assert.ok(
    messages.some((m) => /reference-free.*precompute stage is skipped/.test(m)),
    messages.join("\n"),
  );
  assert.equal(await store.exists(`${w.dir}/simpo/ref_cache.bin`), false, "no cache written");
  assert.ok(Number.isFinite(rows[0].loss) && Number.isFinite(rows.at(-1)!.eval_loss));
  const manifest = JSON.parse(await Deno.readTextFile(`${w.dir}/simpo/manifest.json`));
  assert.equal(manifest.sources.reference, "");
});

async function unpairedWorld() {
  const w = await makeTinyWorld();
  const rows = (await Deno.readTextFile(w.prefs)).trim().split("\n").map((l) => JSON.parse(l))
    .flatMap((r, i) => [
      { prompt: r.prompt, completion: r.chosen, label: true },
      ...(i % 3 ? [{ prompt: r.prompt, completion: r.rejected, label: false }] : []),
    ]);
  await Deno.writeTextFile(`${w.dir}/kto.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
  return { ...w, kto: `${w.dir}/kto.jsonl`, count: rows.length };
}

Deno.test("KTO caches the examples and mismatched pairs, then trains from the cache", async () => {
  await using w = await unpairedWorld();
  const messages: string[] = [];
  const options = {
    model: w.base,
    data: { path: w.kto },
    evalFraction: 0.25,
    outputDir: `${w.dir}/kto`,
    optimizer: { lr: 1e-2, schedule: "constant" as const },
    loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1 },
  };
  const { rows } = await runKto(store, new CpuBackend("f32"), options, {
    log: (m) => messages.push(m),
  });
  assert.ok(messages.some((m) => /warning: you have \d+ desirable and \d+ undesirable/.test(m)));
  const cache = await decodeCache(await store.readFile(`${w.dir}/kto/ref_cache.bin`), "kto");
  assert.deepEqual(cache.header.columns.map((c) => c.name), [
    "completion_logp",
    "kl_logp",
    "completion_len",
    "kl_len",
  ]);
  assert.equal(cache.header.total, w.count);
  const train = rows.filter((r) => "kl" in r && !("eval_loss" in r));
  assert.equal(train.length, 2);
  // Step 0: policy = reference, so z0 = 0 and every loss is λ(1 - σ(0)) = 0.5.
  assertClose([train[0].loss, train[0].kl], [0.5, 0], { atol: 1e-6 });
  assert.ok(Number.isFinite(rows.at(-1)!.eval_loss) && Number.isFinite(rows.at(-1)!.eval_kl));
  const again = await runKto(store, new CpuBackend("f32"), options);
  assert.equal(again.skipped, true, "an up-to-date KTO run is skipped");
});

const ktoSpec = () => resolveKtoSpec({ beta: 0.5, undesirableWeight: 1.5 });

gpuTest("a KTO step on WebGPU matches the CPU backend", async (gpu) => {
  const [a, b] = [await trainKto(gpu, ktoSpec()), await trainKto(new CpuBackend("f32"), ktoSpec())];
  assertClose(a.after, b.after, {
    atol: 2e-5,
    rtol: 1e-4,
    label: "weights",
  });
});

gpuTest("KTO on WebGPU clamps a negative KL estimate at 0 as the CPU backend does", async (gpu) => {
  // Reference log-probs of the mismatched pairs 3 above the policy's: the mean KL is -3 and
  // z0 = max(0, -3) = 0. With β = 2 an unclamped z0 would move every β·u by 6, into the flat
  // tail of the sigmoid; SGD makes the step proportional to the gradient, so that shows.
  const spec = resolveKtoSpec({ beta: 2, undesirableWeight: 1.5 });
  const run = (backend: Backend) => trainKto(backend, spec, 1, [0.1, 3], { kind: "sgd", lr: 1 });
  const [a, b] = [await run(gpu), await run(new CpuBackend("f32"))];
  const initial = await trainKto(new CpuBackend("f32"), spec, 0);
  const largest = b.after.reduce((m, w, i) => Math.max(m, Math.abs(w - initial.after[i])), 0);
  assertClose(a.after, b.after, { atol: 0.01 * largest, rtol: 0, label: "weights" });
});

gpuTest("length-normalised and sorted losses step on WebGPU as on the CPU", async (gpu) => {
  const objective: Objective = preference({
    lossType: ["ipo", "simpo", "aot_unpaired", "orpo"],
    lossWeights: [1, 0.5, 0.5, 0.25],
    beta: 0.5,
  });
  const a = await trainPairs(gpu, objective, 2),
    b = await trainPairs(new CpuBackend("f32"), objective, 2);
  assertClose(a.after, b.after, { atol: 2e-5, rtol: 1e-4, label: "weights" });
  assertClose([a.rows[1].loss], [b.rows[1].loss], { atol: 1e-5, rtol: 1e-4, label: "loss" });
});
