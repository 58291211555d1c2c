/**
 * The pipeline on a tiny world: SFT -> precompute -> DPO end to end, the step-0 identities, the
 * cache against a live reference, resume after a kill, shards, and skipping up-to-date stages.
 */

import assert from "node:assert/strict";
import { assertClose, gpuTest } from "../helpers.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { runSft } from "../../src/pipeline/sft.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { type DpoOptions, runDpo } from "../../src/pipeline/dpo.ts";
import { runPipeline } from "../../src/pipeline/pipeline.ts";
import { decodeCache, mergeCaches } from "../../src/cache/reference_cache.ts";
import { readModelFolder } from "../../src/model/model_folder.ts";
import { makeTinyWorld, store, type TinyWorld } from "./tiny_world.ts";

const cpu = () => new CpuBackend("f32");

function dpoOptions(w: TinyWorld, outputDir: string, extra: Partial<DpoOptions> = {}): DpoOptions {
  return {
    model: w.base,
    data: { path: w.prefs },
    evalData: w.prefsEval,
    outputDir,
    beta: 0.1,
    optimizer: { lr: 1e-2, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 3, loggingSteps: 1 },
    ...extra,
  };
}

async function weightsOf(dir: string): Promise<Float32Array> {
  const { weights } = await readModelFolder(store, dir);
  return Float32Array.from([...weights.values()].flatMap((t) => Array.from(t.data)));
}

async function endToEnd(backend: Backend): Promise<void> {
  await using w = await makeTinyWorld();
  const sft = await runSft(store, backend, {
    model: w.base,
    data: { path: w.sft },
    evalFraction: 0.25,
    outputDir: `${w.dir}/sft`,
    optimizer: { lr: 1e-2 },
    loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1 },
  });
  assert.equal(sft.rows.filter((r) => "loss" in r).length, 2);
  assert.ok("eval_loss" in sft.rows.at(-1)!, "SFT ends with an eval row");
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "manifest.json"]) {
    assert.ok(await store.exists(`${w.dir}/sft/${f}`), `sft/${f} written`);
  }
  await runPrecompute(store, backend, {
    model: `${w.dir}/sft`,
    data: { path: w.prefs },
    evalData: { path: w.prefsEval },
    output: `${w.dir}/ref.bin`,
  });
  const dpo = await runDpo(
    store,
    backend,
    dpoOptions(w, `${w.dir}/dpo`, { model: `${w.dir}/sft`, refCache: `${w.dir}/ref.bin` }),
  );
  const last = dpo.rows.at(-1)!;
  for (const k of ["eval_loss", "eval_rewards/accuracies", "eval_logps/chosen"]) {
    assert.ok(Number.isFinite(last[k]), `${k} in the last metrics row`);
  }
  const train = dpo.rows.find((r) => "rewards/margins" in r)!;
  for (const k of ["loss", "grad_norm", "learning_rate", "epoch", "tokens_per_s"]) {
    assert.ok(Number.isFinite(train[k]), `${k} logged`);
  }
  const report = await Deno.readTextFile(`${w.dir}/dpo/report.html`);
  assert.match(report, /data-chart="logps"/, "report.html charts the training curves");
  const manifest = JSON.parse(await Deno.readTextFile(`${w.dir}/dpo/manifest.json`));
  assert.equal(manifest.sources.reference, `${w.dir}/sft`);
  assert.equal(manifest.complete, true);
  assert.equal(manifest.results.device_bytes.parameters > 0, true);
}

Deno.test("SFT -> precompute -> DPO runs end to end on the CPU backend", () => endToEnd(cpu()));
gpuTest("SFT -> precompute -> DPO runs end to end on WebGPU", (gpu) => endToEnd(gpu));

Deno.test("at step 0 the DPO loss is ln 2, rewards are 0 and accuracies 0", async () => {
  await using w = await makeTinyWorld();
  const { rows } = await runDpo(
    store,
    cpu(),
    dpoOptions(w, `${w.dir}/dpo`, {
      loop: { batchSize: 12, maxSteps: 1, loggingSteps: 1 },
    }),
  );
  const first = rows[0];
  assertClose([first.loss], [Math.LN2], { atol: 1e-6, label: "loss" });
  assertClose([first["rewards/chosen"], first["rewards/rejected"]], [0, 0], { atol: 1e-7 });
  assert.equal(first["rewards/accuracies"], 0);
});

Deno.test("a DPO step from the cache equals the step with a live reference model", async () => {
  await using w = await makeTinyWorld();
  await runDpo(store, cpu(), dpoOptions(w, `${w.dir}/cached`)); // caches the reference itself
  await runDpo(store, cpu(), dpoOptions(w, `${w.dir}/live`, { refModel: w.base }));
  assertClose(await weightsOf(`${w.dir}/live`), await weightsOf(`${w.dir}/cached`), {
    atol: 1e-7,
    rtol: 1e-6,
    label: "weights",
  });
});

Deno.test("a run killed after a checkpoint resumes to bit-identical weights", async () => {
  await using w = await makeTinyWorld(16);
  const loop = { batchSize: 4, maxSteps: 6, loggingSteps: 1, saveSteps: 2 };
  await runDpo(store, cpu(), dpoOptions(w, `${w.dir}/whole`, { loop }));
  const killed = dpoOptions(w, `${w.dir}/killed`, { loop });
  await assert.rejects(
    runDpo(store, cpu(), killed, {
      onStep: (step) => {
        if (step === 5) throw new Error("killed");
      },
    }),
    /killed/,
  );
  assert.ok(await store.exists(`${w.dir}/killed/checkpoint-4/trainer_state.json`));
  await runDpo(store, cpu(), { ...killed, resume: true });
  const a = await weightsOf(`${w.dir}/whole`), b = await weightsOf(`${w.dir}/killed`);
  assert.ok(a.every((x, i) => Object.is(x, b[i])), "weights differ after resume");
});

Deno.test("--shard i/n then merge gives the cache of one pass", async () => {
  await using w = await makeTinyWorld(10);
  const base = { model: w.base, data: { path: w.prefs }, evalData: { path: w.prefsEval } };
  await runPrecompute(store, cpu(), { ...base, output: `${w.dir}/whole.bin`, batchSize: 3 });
  const shards = [];
  for (let i = 0; i < 3; i++) {
    const output = `${w.dir}/shard${i}.bin`;
    await runPrecompute(store, cpu(), { ...base, output, shard: { index: i, count: 3 } });
    shards.push(await decodeCache(await store.readFile(output), output));
  }
  const merged = await decodeCache(await mergeCaches(shards, ["s0", "s1", "s2"]), "merged");
  const whole = await decodeCache(await store.readFile(`${w.dir}/whole.bin`), "whole");
  assert.equal(merged.header.total, 14);
  for (const c of ["chosen_logp", "rejected_logp", "chosen_len", "rejected_len"]) {
    assert.deepEqual(Array.from(merged.columns[c]), Array.from(whole.columns[c]), c);
  }
});

Deno.test("a second pipeline run skips the stages that are up to date", async () => {
  await using w = await makeTinyWorld();
  const spec = {
    baseModel: w.base,
    sftData: w.sft,
    preferenceData: w.prefs,
    preferenceEvalData: w.prefsEval,
    runDir: `${w.dir}/run`,
    sft: { optimizer: { lr: 1e-2 }, loop: { batchSize: 4, maxSteps: 1 } },
    dpo: { optimizer: { lr: 1e-2 }, loop: { batchSize: 4, maxSteps: 1 }, beta: 0.1 },
  };
  const events: string[] = [];
  const hooks = { stage: () => ({}), onStage: (n: string, e: string) => events.push(`${n}:${e}`) };
  await runPipeline(store, cpu(), spec, hooks);
  const second = await runPipeline(store, cpu(), spec, hooks);
  assert.equal(second.sft.skipped && second.precompute.skipped && second.dpo.skipped, true);
  assert.deepEqual(events.slice(6), [
    "sft:start",
    "sft:skipped",
    "precompute:start",
    "precompute:skipped",
    "dpo:start",
    "dpo:skipped",
  ]);
  const third = await runPipeline(
    store,
    cpu(),
    { ...spec, dpo: { ...spec.dpo, beta: 0.2 } },
    hooks,
  );
  assert.equal(third.sft.skipped && third.precompute.skipped, true);
  assert.equal(third.dpo.skipped, false, "a changed beta redoes DPO");
});

Deno.test("a stage whose output was replaced or truncated runs again", async () => {
  await using w = await makeTinyWorld();
  const spec = {
    baseModel: w.base,
    sftData: w.sft,
    preferenceData: w.prefs,
    runDir: `${w.dir}/run`,
    sft: { optimizer: { lr: 1e-2 }, loop: { batchSize: 4, maxSteps: 1 } },
    dpo: { optimizer: { lr: 1e-2 }, loop: { batchSize: 4, maxSteps: 1 }, beta: 0.1 },
  };
  const hooks = { stage: () => ({}) };
  await runPipeline(store, cpu(), spec, hooks);
  const weights = `${w.dir}/run/dpo/model.safetensors`;
  const cache = `${w.dir}/run/ref_cache/ref_cache.bin`;
  const trained = await Deno.readFile(weights);
  // Another run's weights at the output path (here: SFT's), and a truncated cache.
  await Deno.copyFile(`${w.dir}/run/sft/model.safetensors`, weights);
  await Deno.writeFile(cache, (await Deno.readFile(cache)).subarray(0, 100));
  const again = await runPipeline(store, cpu(), spec, hooks);
  assert.equal(again.sft.skipped, true);
  assert.equal(again.precompute.skipped, false, "a truncated cache is recomputed");
  assert.equal(again.dpo.skipped, false, "foreign weights are not 'up to date'");
  assert.deepEqual(await Deno.readFile(weights), trained, "the rerun writes the same weights");
});
