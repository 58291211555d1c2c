/**
 * The loss family end to end: every loss type trains a few steps of a tiny model (CPU backend)
 * with a finite loss and changed parameters; a weighted list trains like its sum; a
 * reference-free loss runs DPO with no cache and no reference model; KTO runs from unpaired
 * data through its cache; on WebGPU the preference and KTO steps match the CPU backend.
 */

import assert from "node:assert/strict";
import { assertClose, gpuTest } from "../helpers.ts";
import {
  type Backend,
  PREFERENCE_LOSS_TYPES,
  type PreferenceLossOptions,
  resolveKtoSpec,
  resolveLossSpec,
} from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { seededRandom } from "../../src/data/sampler.ts";
import { collatePreference, collateSequences, type TokenBatch } from "../../src/data/mod.ts";
import { DeviceOptimizer } from "../../src/train/optimizer.ts";
import { type MicroBatch, type Objective, Trainer } from "../../src/train/trainer.ts";
import { runDpo } from "../../src/pipeline/dpo.ts";
import { runKto } from "../../src/pipeline/kto.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { makeTinyWorld, store } from "./tiny_world.ts";

const TINY = configFromHf({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 41,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  max_position_embeddings: 32,
});

/** 6 pairs of random tokens: prompts of 2-4, completions of 1-5 tokens. */
function pairs(seed: number) {
  const rand = seededRandom(seed);
  const ids = (n: number) => Array.from({ length: n }, () => 4 + Math.floor(rand() * 37));
  const len = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  return Array.from({ length: 6 }, () => ({
    promptIds: ids(len(2, 4)),
    chosenIds: ids(len(1, 5)),
    rejectedIds: ids(len(1, 5)),
    file: "",
    line: 0,
  }));
}

/** A preference objective, its loss resolved as a run resolves it. */
const preference = (options: PreferenceLossOptions): Objective => ({
  kind: "preference",
  spec: resolveLossSpec(options),
});

function setup(backend: Backend, maxBatch: number) {
  const model = new LlamaModel(backend, TINY, { maxBatch, maxSeqLen: 9 });
  model.params.writeAll(initWeights(model.layout, { seed: 5, std: 0.3 }));
  const optimizer = new DeviceOptimizer(backend, model.layout, {
    lr: 1e-2,
    schedule: "constant",
    maxGradNorm: 0,
  });
  return { model, optimizer };
}

/** Log-probs of the initial model (the reference) on a batch. */
async function scores(model: LlamaModel, batch: TokenBatch): Promise<Float64Array> {
  model.setBatch(batch);
  model.forward();
  model.backend.submit();
  return Float64Array.from(await model.backend.read(model.acts.seqLogps));
}

/** Trains `steps` preference steps; returns the losses, the final weights and the metrics. */
async function trainPairs(backend: Backend, objective: Objective, steps = 3) {
  const examples = pairs(9);
  const collated = collatePreference(examples, { padTokenId: 0 });
  const batch = collated;
  const { model, optimizer } = setup(backend, 12);
  const micro: MicroBatch = {
    batch,
    referenceLogps: await scores(model, batch),
  };
  const before = Float64Array.from(await model.params.readArena());
  const trainer = new Trainer(model, optimizer, objective);
  const rows = [];
  for (let s = 0; s < steps; s++) {
    trainer.step([micro]);
    rows.push(await trainer.readMetrics());
  }
  const after = Float64Array.from(await model.params.readArena());
  return { rows, before, after };
}

for (const lossType of PREFERENCE_LOSS_TYPES) {
  Deno.test(`${lossType} trains 3 steps of the tiny model with a finite loss`, async () => {
    const { rows, before, after } = await trainPairs(
      new CpuBackend("f32"),
      preference({ lossType, beta: 0.5 }),
    );
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) assert.ok(Number.isFinite(v), `${k} = ${v}`);
    }
    assert.ok(after.some((w, i) => w !== before[i]), "parameters changed");
  });
}

Deno.test("a weighted list of losses takes the step of the weighted sum", async () => {
  const cpu = () => new CpuBackend("f64");
  const list = await trainPairs(
    cpu(),
    preference({ lossType: ["sigmoid", "sft"], lossWeights: [1, 0.5], beta: 0.5 }),
    1,
  );
  const sigmoid = await trainPairs(
    cpu(),
    preference({ lossType: "sigmoid", beta: 0.5 }),
    1,
  );
  const sft = await trainPairs(cpu(), preference({ lossType: "sft", beta: 0.5 }), 1);
  assertClose([list.rows[0].loss], [sigmoid.rows[0].loss + 0.5 * sft.rows[0].loss], {
    atol: 1e-12,
  });
  assertClose([list.rows[0].nll_loss], [sft.rows[0].nll_loss], { atol: 1e-12 });
});

Deno.test("a reference-free loss runs DPO with no cache and no reference model", async () => {
  const w = await makeTinyWorld();
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
  const w = await unpairedWorld();
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

/** Two KTO steps of the tiny model on a backend; returns the weights. */
async function trainKto(backend: Backend): Promise<Float64Array> {
  const examples = pairs(4);
  const rows = (pick: "chosenIds" | "rejectedIds") =>
    collateSequences(
      examples.map((e, i) => ({
        promptIds: e.promptIds,
        completionIds: pick === "chosenIds" ? e.chosenIds : examples[(i + 1) % 6].chosenIds,
      })),
      { padTokenId: 0 },
    );
  const batch = rows("chosenIds"), klBatch = rows("rejectedIds");
  const { model, optimizer } = setup(backend, 6);
  const referenceLogps = Float64Array.from([
    ...(await scores(model, batch)).map((x) => x + 0.1),
    ...(await scores(model, klBatch)).map((x) => x - 0.3),
  ]);
  const trainer = new Trainer(model, optimizer, {
    kind: "kto",
    spec: resolveKtoSpec({ beta: 0.5, undesirableWeight: 1.5 }),
  });
  const micro = {
    batch,
    klBatch,
    referenceLogps,
    labels: [1, 0, 1, 1, 0, 1],
  };
  for (let s = 0; s < 2; s++) trainer.step([micro]);
  return Float64Array.from(await model.params.readArena());
}

gpuTest("a KTO step on WebGPU matches the CPU backend", async (gpu) => {
  assertClose(await trainKto(gpu), await trainKto(new CpuBackend("f32")), {
    atol: 2e-5,
    rtol: 1e-4,
    label: "weights",
  });
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
