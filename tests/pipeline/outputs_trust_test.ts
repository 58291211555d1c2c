/**
 * The skip check trusts contents, not existence (issue 14, "Why" 1-2): a final model truncated to
 * 100 bytes is not "up to date", `--overwrite-output-dir` clears another run's higher-numbered
 * checkpoints, and a run removes the temporary files a killed run left behind.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runSft, type SftOptions } from "../../src/pipeline/sft.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { makeTinyWorld, store, type TinyWorld } from "./tiny_world.ts";

const cpu = () => new CpuBackend("f32");

function sftOptions(w: TinyWorld, lr: number, more: Partial<SftOptions> = {}): SftOptions {
  return {
    model: w.base,
    data: { path: w.sft },
    outputDir: `${w.dir}/out`,
    optimizer: { lr, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 4, loggingSteps: 2, saveSteps: 2 },
    ...more,
  };
}

Deno.test("a final model truncated to 100 bytes is not up to date: the rerun trains again", async () => {
  await using w = await makeTinyWorld();
  const options = sftOptions(w, 1e-3);
  await runSft(store, cpu(), options);
  const file = `${w.dir}/out/model.safetensors`;
  const whole = await Deno.readFile(file);
  await Deno.writeFile(file, whole.slice(0, 100));
  const again = await runSft(store, cpu(), options);
  assert.equal(again.skipped, false, "a truncated output must not be skipped over");
  assert.deepEqual(await Deno.readFile(file), whole, "the rerun rewrites the same weights");
  assert.equal((await runSft(store, cpu(), options)).skipped, true, "now it is up to date");
});

Deno.test("--overwrite-output-dir clears another run's higher-numbered checkpoints", async () => {
  await using w = await makeTinyWorld();
  // Run A: 8 steps, checkpoints 2, 4, 6. Run B: 4 steps into the same folder with overwrite.
  await runSft(store, cpu(), {
    ...sftOptions(w, 1e-3),
    loop: { batchSize: 4, maxSteps: 8, loggingSteps: 2, saveSteps: 2 },
  });
  const before = [...Deno.readDirSync(`${w.dir}/out`)].map((e) => e.name).sort();
  assert.ok(before.includes("checkpoint-6"), before.join());
  await runSft(store, cpu(), sftOptions(w, 5e-4, { overwriteOutputDir: true }));
  const after = [...Deno.readDirSync(`${w.dir}/out`)].map((e) => e.name).sort();
  assert.ok(!after.includes("checkpoint-4"), "B's 4 steps end without a checkpoint-4");
  assert.ok(!after.includes("checkpoint-6"), `A's checkpoint-6 is gone: ${after}`);
  assert.ok(after.includes("checkpoint-2"), `B's own checkpoint-2: ${after}`);
  // Nothing of A's is left to resume from: B's resume says it takes B's checkpoint-2 only.
  const messages: string[] = [];
  await runSft(store, cpu(), sftOptions(w, 5e-4, { resume: true, force: true }), {
    log: (m) => messages.push(m),
  });
  assert.ok(messages.some((m) => /resumed from .*checkpoint-2 at step 2/.test(m)), messages.join());
});

Deno.test("a run removes the temporary files a killed run left behind", async () => {
  await using w = await makeTinyWorld();
  const out = `${w.dir}/out`;
  await Deno.mkdir(`${out}/checkpoint-2`, { recursive: true });
  const leftovers = [
    `${out}/.model.safetensors.0123abcd1.tmp`,
    `${out}/checkpoint-2/.optimizer.safetensors.89abcdef2a.tmp`,
  ];
  for (const f of leftovers) await Deno.writeFile(f, new Uint8Array(10));
  await Deno.writeFile(`${out}/notes.tmp`, new Uint8Array(1)); // not ours: kept
  const messages: string[] = [];
  await runSft(store, cpu(), sftOptions(w, 1e-3, { overwriteOutputDir: true }), {
    log: (m) => messages.push(m),
  });
  for (const f of leftovers) assert.equal(await store.exists(f), false, f);
  assert.equal(await store.exists(`${out}/notes.tmp`), true);
  assert.ok(messages.some((m) => /removed 2 temporary file/.test(m)), messages.join("\n"));

  const cache = `${w.dir}/ref.bin`;
  const stray = `${w.dir}/.ref.bin.00000000f.tmp`;
  const foreign = `${w.dir}/.other.bin.00000000f.tmp`;
  await Deno.writeFile(stray, new Uint8Array(3));
  await Deno.writeFile(foreign, new Uint8Array(3));
  await runPrecompute(store, cpu(), { model: w.base, data: { path: w.prefs }, output: cache });
  assert.equal(await store.exists(stray), false, "the cache's own temporary file is removed");
  assert.equal(await store.exists(foreign), true, "another file's temporary file is kept");
});
