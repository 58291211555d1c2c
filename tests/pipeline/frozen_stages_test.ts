/**
 * `--frozen-dtype` in the stages that read a frozen model (issue 12 item 2): a bf16 checkpoint's
 * frozen weights held at 2 bytes per element (auto) against the same run widened to f32, on
 * WebGPU. KTO (the cache's reference and the LoRA base), Online DPO (its live reference) and eval
 * (both read-only models) give the same bits either way and hold fewer parameter bytes; DPO's
 * plan counts a live reference in the dtype the run holds it in (its own checkpoint's), equal to
 * what the run allocates.
 */

import assert from "node:assert/strict";
import { gpuTest } from "../helpers.ts";
import { makeTinyWorld, store } from "./tiny_world.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { saveCheckpoint } from "../../src/io/checkpoint.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import { configToHf } from "../../src/model/config.ts";
import { copyTokenizerFiles, readModelFolder } from "../../src/model/model_folder.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { runKto } from "../../src/pipeline/kto.ts";
import { runOnlineDpo } from "../../src/pipeline/online_dpo.ts";
import { type DpoOptions, runDpo } from "../../src/pipeline/dpo.ts";
import { MemoryPlanError } from "../../src/pipeline/memory.ts";
import { evaluateFolders } from "../../src/eval/compare.ts";
import { WORLD_REWARD } from "../../src/eval/reward_fn.ts";
import { sentimentReward } from "../../src/world/reward.ts";
import type { FrozenDtypeChoice } from "../../src/model/model_folder.ts";

const root = new URL("../../", import.meta.url).pathname;

/**
 * `src` saved as a BF16 checkpoint (config.json still says float32: the headers decide), every
 * matrix plus `noise` times a seeded perturbation first, so two copies can differ.
 */
async function bf16Copy(src: string, dst: string, noise = 0): Promise<string> {
  const { config, weights } = await readModelFolder(store, src);
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const tensors = new Map(
    [...weights].map(([name, t]) => [name, {
      shape: t.shape,
      data: Float32Array.from(t.data, (x) => x + (t.shape.length > 1 ? noise * next() : 0)),
    }]),
  );
  await saveCheckpoint(store, dst, configToHf(config), tensors, { dtype: "BF16" });
  await copyTokenizerFiles(store, src, dst);
  assert.equal((await readModelFolder(store, dst)).dtype, "bf16");
  return dst;
}

const hash = async (path: string) => await sha256Hex(await store.readFile(path));

/** Metrics rows without their clocks. */
const untimed = (rows: Array<Record<string, number>>) =>
  rows.map((r) =>
    Object.fromEntries(Object.entries(r).filter(([k]) => !/per_s|seconds|elapsed/.test(k)))
  );

/** Runs `fn` on a fresh WebGPU backend; returns its result and the device bytes it left. */
async function onFreshGpu<T>(fn: (gpu: Backend) => Promise<T>) {
  const gpu = await GpuBackend.create();
  try {
    const result = await fn(gpu);
    return { result, bytes: gpu.bytesByRole() };
  } finally {
    gpu.destroy();
  }
}

/** The two runs agree in every role but the parameters, which auto holds fewer of. */
function assertFewerParameterBytes(
  auto: Record<string, number>,
  f32: Record<string, number>,
  label: string,
) {
  const { parameters: a, ...restAuto } = auto;
  const { parameters: b, ...restF32 } = f32;
  assert.deepEqual(restAuto, restF32, label);
  assert.ok(a < b, `${label}: parameters ${a} (auto) should be below ${b} (f32)`);
  console.log(`${label}: parameter bytes ${a} (auto, bf16) vs ${b} (f32)`);
}

gpuTest("kto --use-peft on a bf16 base: the same bits as f32, fewer parameter bytes", async () => {
  await using w = await makeTinyWorld();
  const rows = (await Deno.readTextFile(w.prefs)).trim().split("\n").map((l) => JSON.parse(l))
    .flatMap((r, i) => [
      { prompt: r.prompt, completion: r.chosen, label: true },
      ...(i % 3 ? [{ prompt: r.prompt, completion: r.rejected, label: false }] : []),
    ]);
  const data = `${w.dir}/kto.jsonl`;
  await Deno.writeTextFile(data, rows.map((r) => JSON.stringify(r)).join("\n"));
  const half = await bf16Copy(w.base, `${w.dir}/base_bf16`);
  const run = (frozenDtype: FrozenDtypeChoice) =>
    onFreshGpu(async (gpu) => {
      const outputDir = `${w.dir}/kto_${frozenDtype}`;
      const { rows } = await runKto(store, gpu, {
        model: half,
        data: { path: data },
        evalFraction: 0.25,
        outputDir,
        optimizer: { lr: 1e-2, schedule: "constant" },
        loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1 },
        peft: { lora: { r: 4, alpha: 8, dropout: 0.1 } },
        frozenDtype,
      });
      const cache = await decodeCache(await store.readFile(`${outputDir}/ref_cache.bin`), "kto");
      return {
        rows: untimed(rows),
        adapter: await hash(`${outputDir}/adapter_model.safetensors`),
        columns: Object.fromEntries(
          Object.entries(cache.columns).map(([k, v]) => [k, Array.from(v)]),
        ),
      };
    });
  const auto = await run("auto"), f32 = await run("f32");
  assert.deepEqual(auto.result.columns, f32.result.columns, "the reference cache");
  assert.deepEqual(auto.result.rows, f32.result.rows, "metrics");
  assert.equal(auto.result.adapter, f32.result.adapter, "the trained adapter");
  assert.ok(auto.result.rows.length > 0 && Number.isFinite(auto.result.rows[0].loss));
  assertFewerParameterBytes(auto.bytes, f32.bytes, "kto");
});

gpuTest("online DPO's live reference of a bf16 model: the same bits, fewer bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dpo-online-half-" });
  try {
    const half = await bf16Copy(`${root}data/base`, `${dir}/base_bf16`);
    const run = (frozenDtype: FrozenDtypeChoice) =>
      onFreshGpu(async (gpu) => {
        const outputDir = `${dir}/online_${frozenDtype}`;
        const { rows } = await runOnlineDpo(store, gpu, {
          model: half,
          prompts: `${root}data/prompts_eval.jsonl`,
          outputDir,
          reward: WORLD_REWARD,
          maxNewTokens: 6,
          beta: 0.5,
          optimizer: { lr: 1e-3 },
          loop: { batchSize: 4, maxSteps: 2, loggingSteps: 1, seed: 7 },
          frozenDtype,
        });
        return { rows: untimed(rows), policy: await hash(`${outputDir}/model.safetensors`) };
      });
    const auto = await run("auto"), f32 = await run("f32");
    assert.deepEqual(auto.result.rows, f32.result.rows, "metrics");
    assert.ok(auto.result.rows.some((r) => r.pairs > 0), "some pairs trained");
    assert.equal(auto.result.policy, f32.result.policy, "the trained policy");
    assertFewerParameterBytes(auto.bytes, f32.bytes, "online-dpo");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

gpuTest(
  "eval holds both read-only bf16 models half: the same evaluation, fewer bytes",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "dpo-eval-half-" });
    try {
      const reference = await bf16Copy(`${root}data/base`, `${dir}/ref_bf16`);
      const policy = await bf16Copy(`${root}data/base`, `${dir}/policy_bf16`, 0.05);
      const prompts = `${dir}/prompts.jsonl`, pairs = `${dir}/pairs.jsonl`;
      const head = async (path: string, n: number) =>
        (await Deno.readTextFile(path)).split("\n").slice(0, n).join("\n") + "\n";
      await Deno.writeTextFile(prompts, await head(`${root}data/prompts_eval.jsonl`, 6));
      await Deno.writeTextFile(pairs, await head(`${root}data/preferences_eval.jsonl`, 6));
      const run = (frozenDtype: FrozenDtypeChoice) =>
        onFreshGpu(async (gpu) => {
          const c = await evaluateFolders(store, gpu, {
            model: policy,
            refModel: reference,
            prompts,
            pairsFile: pairs,
            seeds: [0, 1],
            maxNewTokens: 8,
            batchSize: 8,
            beta: 0.1,
            sampleCount: 2,
            reward: sentimentReward,
            frozenDtype,
          });
          const strip = ({ seconds: _s, timings: _t, ...e }: typeof c.policy) => e;
          return { reference: strip(c.reference), policy: strip(c.policy), samples: c.samples };
        });
      const auto = await run("auto"), f32 = await run("f32");
      assert.deepEqual(auto.result, f32.result);
      assert.ok(auto.result.policy.kl > 0, "the two models differ");
      assertFewerParameterBytes(auto.bytes, f32.bytes, "eval");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** DPO's plan (read from its refusal under a 1-byte --max-memory) and a real run's bytes. */
async function planAndAllocation(backend: () => Promise<Backend>, options: DpoOptions) {
  const refused = await runDpo(store, await backend(), { ...options, maxMemory: 1 })
    .then(() => undefined, (e) => e);
  assert.ok(refused instanceof MemoryPlanError, String(refused));
  const b = await backend();
  try {
    await runDpo(store, b, options);
    return { plan: refused.plan.bytes, allocated: b.bytesByRole() };
  } finally {
    b.destroy();
  }
}

for (
  const [name, backend] of [
    ["WebGPU", () => GpuBackend.create()],
    ["the CPU", () => Promise.resolve(new CpuBackend("f32"))],
  ] as const
) {
  const test = name === "WebGPU"
    ? gpuTest
    : (n: string, fn: () => Promise<void>) => Deno.test(n, fn);
  test(`dpo's plan of a live bf16 reference equals what it allocates on ${name}`, async () => {
    await using w = await makeTinyWorld();
    const half = await bf16Copy(w.base, `${w.dir}/ref_bf16`);
    const base = {
      data: { path: w.prefs },
      optimizer: { lr: 1e-3 },
      loop: { batchSize: 4, maxSteps: 1 },
    };
    // An f32 policy beside a bf16 --ref-model: the reference is held in its own dtype.
    const ref = await planAndAllocation(backend, {
      ...base,
      model: w.base,
      refModel: half,
      outputDir: `${w.dir}/dpo_ref`,
    });
    assert.deepEqual(ref.plan, ref.allocated, "--ref-model");
    // A bf16 policy with its frozen copy as the live reference (no cache, no --ref-model).
    const copy = await planAndAllocation(backend, {
      ...base,
      model: half,
      precomputeRefLogProbs: false,
      outputDir: `${w.dir}/dpo_copy`,
    });
    assert.deepEqual(copy.plan, copy.allocated, "the policy's frozen copy");
    // The live bf16 reference, planned and allocated, is smaller than a second f32 policy.
    if (name === "WebGPU") assert.ok(ref.allocated.parameters < 2 * copy.plan.gradients);
  });
}

/** `deno task plan --json` with `args`. */
async function planJson(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-webgpu", "-A", `${root}tasks/plan.ts`, "--json", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("plan counts the dtype the run holds: the headers', and a --ref-model's own", async () => {
  await using w = await makeTinyWorld();
  // config.json of the copy says float32; its tensors are BF16, which is what a run holds.
  const half = await bf16Copy(w.base, `${w.dir}/bf16`);
  const cpu = ["--device", "cpu", "--max-length", "32"];
  assert.equal((await planJson("--model", half, ...cpu)).frozen_dtype, "bf16");
  const widened = await planJson("--model", half, "--frozen-dtype", "f32", ...cpu);
  assert.equal(widened.frozen_dtype, "f32");
  const live = await planJson("--model", w.base, "--ref-model", half, ...cpu);
  assert.deepEqual([live.frozen_dtype, live.reference_dtype], ["f32", "bf16"]);
  const none = await planJson("--model", w.base, ...cpu);
  assert.ok(live.bytes.parameters > none.bytes.parameters, "the live reference is counted");
});
