/**
 * LoRA through the stages on the tiny world (CPU): a LoRA SFT writes a PEFT adapter and leaves
 * the base weights alone, a killed run resumes to a bit-identical adapter, and DPO after it
 * (`adapter`) starts at loss ln 2 whether the reference (base + that adapter, frozen) is cached
 * by precompute or runs live on the policy's own weights.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runSft, type SftOptions } from "../../src/pipeline/sft.ts";
import { runDpo } from "../../src/pipeline/dpo.ts";
import { readManifest } from "../../src/pipeline/manifest.ts";
import { makeTinyWorld, store, type TinyWorld } from "./tiny_world.ts";

const cpu = () => new CpuBackend("f32");
const LORA = { r: 4, alpha: 8, dropout: 0.1 };

function sftOptions(w: TinyWorld, more: Partial<SftOptions> = {}): SftOptions {
  return {
    model: w.base,
    data: { path: w.sft },
    outputDir: `${w.dir}/sft`,
    optimizer: { lr: 1e-2, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 4, loggingSteps: 1, saveSteps: 2 },
    peft: { lora: LORA },
    ...more,
  };
}

Deno.test("LoRA SFT writes a PEFT adapter and resumes to bit-identical adapter weights", async () => {
  await using w = await makeTinyWorld();
  const whole = await runSft(store, cpu(), sftOptions(w));
  const out = `${w.dir}/sft`;
  const adapter = await store.readFile(`${out}/adapter_model.safetensors`);
  assert.equal(
    await store.exists(`${out}/model.safetensors`),
    false,
    "no full model unless merged",
  );
  const config = JSON.parse(await store.readText(`${out}/adapter_config.json`));
  assert.equal(config.peft_type, "LORA");
  assert.equal(config.r, 4);
  const manifest = await readManifest(store, `${out}/manifest.json`);
  assert.deepEqual((manifest!.options.lora as { r: number }).r, 4);
  // Killed after checkpoint-2 (its later files removed), then resumed.
  for (const f of ["checkpoint-4", "adapter_model.safetensors", "manifest.json"]) {
    await Deno.remove(`${out}/${f}`, { recursive: true }).catch(() => {});
  }
  const messages: string[] = [];
  const resumed = await runSft(store, cpu(), { ...sftOptions(w), resume: true }, {
    log: (m) => messages.push(m),
  });
  assert.ok(messages.some((m) => /resumed from .*checkpoint-2 at step 2/.test(m)), messages.join());
  assert.deepEqual(await store.readFile(`${out}/adapter_model.safetensors`), adapter);
  assert.deepEqual(resumed.rows.map((r) => r.loss), whole.rows.map((r) => r.loss));
  // The dropout is seeded: another seed gives other weights.
  const other = await runSft(store, cpu(), {
    ...sftOptions(w, { outputDir: `${w.dir}/sft2` }),
    loop: { batchSize: 4, maxSteps: 4, loggingSteps: 1, seed: 7 },
  });
  assert.ok(other.rows.length > 0);
  assert.notDeepEqual(await store.readFile(`${w.dir}/sft2/adapter_model.safetensors`), adapter);
});

Deno.test("DPO after a LoRA SFT starts at ln 2 against base + adapter, cached or live", async () => {
  await using w = await makeTinyWorld();
  await runSft(store, cpu(), sftOptions(w, { loop: { batchSize: 4, maxSteps: 3 } }));
  for (const precompute of [true, false]) {
    const { rows } = await runDpo(store, cpu(), {
      model: w.base,
      data: { path: w.prefs },
      outputDir: `${w.dir}/dpo-${precompute}`,
      optimizer: { lr: 1e-3, schedule: "constant" },
      loop: { batchSize: 4, maxSteps: 1, loggingSteps: 1 },
      beta: 0.1,
      // No dropout: with it on, the policy at step 1 is not the reference (as in TRL).
      peft: { adapter: `${w.dir}/sft`, mergeAdapter: true, lora: { dropout: 0 } },
      precomputeRefLogProbs: precompute,
    });
    assert.ok(Math.abs(rows[0].loss - Math.LN2) < 1e-6, `step-1 loss ${rows[0].loss}`);
    assert.equal(rows[0]["rewards/accuracies"], 0);
    const dir = `${w.dir}/dpo-${precompute}`;
    assert.ok(await store.exists(`${dir}/adapter_model.safetensors`));
    assert.ok(await store.exists(`${dir}/model.safetensors`), "--merge-adapter writes the model");
  }
});
