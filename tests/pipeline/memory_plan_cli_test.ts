/**
 * `deno task plan` and the plan every training task runs: plan exits 0 whenever it prints one,
 * fitting or not; sft, dpo, kto and precompute refuse a run over `--max-memory` with exit 2, the
 * numbers and the flags that would fit, before allocating or writing anything.
 */

import assert from "node:assert/strict";
import { makeTinyWorld, store } from "./tiny_world.ts";
import { runSft } from "../../src/pipeline/sft.ts";
import { MemoryPlanError } from "../../src/pipeline/memory.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";

async function run(task: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-webgpu",
      "-A",
      new URL(`../../tasks/${task}.ts`, import.meta.url)
        .pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const ROLES = ["parameters", "gradients", "optimizer", "activations", "inputs"];

Deno.test("plan --json prints bytes by role and fits, and exits 0 fitting or not", async () => {
  const shape = ["--shape", "Qwen2.5-0.5B", "--batch-size", "2", "--device", "cpu", "--json"];
  const fits = await run("plan", shape);
  assert.equal(fits.code, 0, fits.stderr);
  const plan = JSON.parse(fits.stdout);
  assert.deepEqual(Object.keys(plan.bytes), ROLES);
  assert.equal(plan.fits, true);
  assert.equal(plan.frozen_dtype, "bf16");
  const tight = await run("plan", [...shape, "--max-memory", "1GiB"]);
  assert.equal(tight.code, 0, tight.stderr);
  const refused = JSON.parse(tight.stdout);
  assert.equal(refused.fits, false);
  assert.deepEqual(refused.bytes, plan.bytes);
  assert.match(tight.stderr, /EXCEEDS max-memory 1\.00 GiB/);
  const bad = await run("plan", ["--shape", "GPT-5", "--device", "cpu"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shape: unknown shape "GPT-5": expected one of SmolLM2-135M/);
});

Deno.test("plan --model --data plans the stage's longest tokenized example", async () => {
  await using w = await makeTinyWorld();
  const r = await run("plan", ["--model", w.base, "--data", w.prefs, "--device", "cpu", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.ok(plan.seq_len > 0 && plan.seq_len < 1024, String(plan.seq_len));
  assert.equal(plan.frozen_dtype, "f32");
});

Deno.test("sft refuses a run over --max-memory with exit 2 and the flags that fit", async () => {
  await using w = await makeTinyWorld();
  const out = `${w.dir}/sft`;
  const r = await run("sft", [
    "--model",
    w.base,
    "--data",
    w.sft,
    "--output-dir",
    out,
    "--device",
    "cpu",
    "--batch-size",
    "8",
    "--max-memory",
    "200KiB",
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /sft: the run does not fit .*nothing was allocated/);
  assert.match(r.stderr, /EXCEEDS max-memory 0\.20 MiB: total/);
  assert.match(r.stderr, /--per-device-train-batch-size \d|--max-length \d|no single flag/);
  assert.equal(await store.exists(out), false, "nothing written");
});

Deno.test("a refused run allocates nothing on the device", async () => {
  await using w = await makeTinyWorld();
  const backend = new CpuBackend("f32");
  const error = await runSft(store, backend, {
    model: w.base,
    data: { path: w.sft },
    outputDir: `${w.dir}/sft`,
    loop: { batchSize: 4, maxSteps: 1 },
    maxMemory: 1024,
  }).then(() => undefined, (e) => e);
  assert.ok(error instanceof MemoryPlanError, String(error));
  assert.equal(error.exitCode, 2);
  assert.deepEqual(Object.values(backend.bytesByRole()), [0, 0, 0, 0, 0]);
});
