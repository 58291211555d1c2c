/**
 * A run trusts only what belongs to it: another run's folder is refused (or cleared on request),
 * `resume` takes only this run's checkpoints, a diverged run stops without saving poisoned
 * weights, non-finite inputs are refused, and one run at a time holds an output folder.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runSft, type SftOptions } from "../../src/pipeline/sft.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { readManifest } from "../../src/pipeline/manifest.ts";
import { decodeCache, encodeCache } from "../../src/cache/reference_cache.ts";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
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

Deno.test("a run refuses a folder holding another run's outputs unless told to overwrite", async () => {
  await using w = await makeTinyWorld();
  await runSft(store, cpu(), sftOptions(w, 1e-3));
  await assert.rejects(
    () => runSft(store, cpu(), sftOptions(w, 5e-4)),
    (e: Error) => {
      assert.equal(e.name, "OutputDirError");
      assert.match(e.message, /another run's outputs.*--overwrite-output-dir/);
      return true;
    },
  );
  const messages: string[] = [];
  const b = await runSft(store, cpu(), sftOptions(w, 5e-4, { overwriteOutputDir: true }), {
    log: (m) => messages.push(m),
  });
  assert.equal(b.skipped, false);
  assert.ok(messages.some((m) => /cleared another run's outputs/.test(m)), messages.join("\n"));
  const manifest = await readManifest(store, `${w.dir}/out/manifest.json`);
  assert.equal((manifest!.options.optimizer as { lr: number }).lr, 5e-4);
});

Deno.test("resume takes only this run's checkpoints", async () => {
  await using w = await makeTinyWorld();
  // Run A leaves checkpoints; run B (another learning rate) overwrites the folder, dies after
  // its first checkpoint (simulated: its later files removed), and resumes.
  await runSft(store, cpu(), sftOptions(w, 1e-3));
  const optionsB = sftOptions(w, 5e-4, { overwriteOutputDir: true });
  const whole = await runSft(store, cpu(), optionsB);
  const final = await store.readFile(`${w.dir}/out/model.safetensors`);
  for (const f of ["checkpoint-4", "model.safetensors", "manifest.json"]) {
    await Deno.remove(`${w.dir}/out/${f}`, { recursive: true }).catch(() => {});
  }
  // A foreign checkpoint with a higher step than B's, as run A would have left it.
  await Deno.mkdir(`${w.dir}/out/checkpoint-9`);
  await Deno.writeTextFile(
    `${w.dir}/out/checkpoint-9/trainer_state.json`,
    JSON.stringify({ global_step: 9, run_fingerprint: "another run", log_history: [] }),
  );
  const messages: string[] = [];
  await assert.rejects(
    () => runSft(store, cpu(), { ...optionsB, overwriteOutputDir: false, resume: true }),
    /checkpoint-9 is another run's checkpoint/,
  );
  await Deno.remove(`${w.dir}/out/checkpoint-9`, { recursive: true });
  const resumed = await runSft(store, cpu(), { ...optionsB, resume: true }, {
    log: (m) => messages.push(m),
  });
  assert.ok(messages.some((m) => /resumed from .*checkpoint-2 at step 2/.test(m)), messages.join());
  assert.deepEqual(await store.readFile(`${w.dir}/out/model.safetensors`), final);
  assert.deepEqual(resumed.rows.map((r) => r.loss), whole.rows.map((r) => r.loss));
});

Deno.test("a diverged run stops with the step and the quantity and saves no weights", async () => {
  await using w = await makeTinyWorld();
  const options = sftOptions(w, 1e30, {
    optimizer: { lr: 1e30, schedule: "constant", maxGradNorm: 0 },
    loop: { batchSize: 4, maxSteps: 6, loggingSteps: 1 },
  });
  await assert.rejects(() => runSft(store, cpu(), options), (e: Error) => {
    assert.equal(e.name, "NonFiniteError");
    assert.match(e.message, /(loss|grad_norm) is (NaN|Infinity|-Infinity) at step \d/);
    return true;
  });
  assert.equal(await store.exists(`${w.dir}/out/model.safetensors`), false);
  const manifest = await readManifest(store, `${w.dir}/out/manifest.json`);
  assert.equal(manifest?.complete, false, "the manifest stays incomplete");
});

Deno.test("a model or a cache holding NaN is refused as bad input", async () => {
  await using w = await makeTinyWorld();
  const file = `${w.base}/model.safetensors`;
  const { tensors } = readSafetensors(await store.readFile(file), { file });
  const [name, t] = [...tensors][0];
  const data = Float32Array.from(t.data);
  data[3] = NaN;
  await store.writeFileAtomic(
    file,
    writeSafetensors(new Map([...tensors, [name, { ...t, data }]])),
  );
  await assert.rejects(() => runSft(store, cpu(), sftOptions(w, 1e-3)), (e: Error) => {
    assert.equal(e.name, "NonFiniteInputError");
    assert.match(e.message, new RegExp(`${name} holds NaN at element 3`));
    return true;
  });

  await using v = await makeTinyWorld();
  const output = `${v.dir}/ref.bin`;
  await runPrecompute(store, cpu(), { model: v.base, data: { path: v.prefs }, output });
  const cache = await decodeCache(await store.readFile(output), output);
  const { payload_sha256: _p, format_version: _f, columns: _c, ...header } = cache.header;
  const poisoned = { ...cache.columns, chosen_logp: Float64Array.from(cache.columns.chosen_logp) };
  poisoned.chosen_logp[0] = NaN;
  // A well-formed file with a correct checksum: only the values are wrong.
  const bytes = await encodeCache(header, poisoned);
  await assert.rejects(() => decodeCache(bytes, output), /chosen_logp holds NaN at row 0/);
});

Deno.test("one run at a time holds an output folder; a dead run's lock is taken over", async () => {
  await using w = await makeTinyWorld();
  const options = sftOptions(w, 1e-3);
  // A live run's lock (this very process holds it): a second run is refused, deterministically
  // (two concurrent runs raced under CI load: the first could finish before the second began).
  await Deno.mkdir(`${w.dir}/out`, { recursive: true });
  await Deno.writeTextFile(`${w.dir}/out/.lock`, JSON.stringify({ pid: Deno.pid }));
  await assert.rejects(() => runSft(store, cpu(), options), (e: Error) => {
    assert.equal(e.name, "LockError");
    assert.match(e.message, /in use by another run \(pid \d+/);
    return true;
  });
  await Deno.remove(`${w.dir}/out/.lock`);
  await runSft(store, cpu(), options);
  assert.equal(await store.exists(`${w.dir}/out/.lock`), false, "the lock is released");

  // A lock left by a process that no longer runs.
  await Deno.writeTextFile(`${w.dir}/out/.lock`, JSON.stringify({ pid: 2 ** 22 + 7 }));
  const messages: string[] = [];
  await runSft(store, cpu(), { ...options, force: true }, { log: (m) => messages.push(m) });
  assert.ok(messages.some((m) => /took over the stale lock/.test(m)), messages.join("\n"));
});

Deno.test("an aborted signal stops training and precompute before their next step", async () => {
  await using w = await makeTinyWorld();
  const controller = new AbortController();
  let steps = 0;
  await assert.rejects(
    () =>
      runSft(
        store,
        cpu(),
        sftOptions(w, 1e-3, { loop: { batchSize: 4, maxSteps: 4, loggingSteps: 2 } }),
        {
          signal: controller.signal,
          onStep: () => {
            if (++steps === 2) controller.abort(new Error("stop here"));
          },
        },
      ),
    /stop here/,
  );
  assert.equal(steps, 2);
  assert.equal(await store.exists(`${w.dir}/out/model.safetensors`), false);
  const stopped = AbortSignal.abort(new Error("stopped"));
  await assert.rejects(
    () =>
      runPrecompute(store, cpu(), {
        model: w.base,
        data: { path: w.prefs },
        output: `${w.dir}/cache.bin`,
      }, { signal: stopped }),
    /stopped/,
  );
  assert.equal(await store.exists(`${w.dir}/cache.bin`), false);
});
