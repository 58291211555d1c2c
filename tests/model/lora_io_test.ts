/**
 * PEFT adapter folders: the tensor names and shapes follow PEFT's naming rules (a fixture written
 * from them by tests/fixtures/make_lora_fixture.py), adapter_config.json carries PEFT's fields, an
 * adapter reads back as written, unsupported adapters are refused, and the merged model computes
 * what base + adapter computes.
 */

import { assertClose, assertRejects, cpu } from "../helpers.ts";
import { fixtureBatch, readFixture } from "./fixture.ts";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { parseSafetensorsHeader } from "../../src/io/safetensors.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { loraLayout, resolveTargetModules } from "../../src/model/lora.ts";
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  mergeAdapter,
  PeftAdapterError,
  readAdapter,
  saveAdapter,
} from "../../src/model/lora_io.ts";

interface LayoutCase {
  base: string;
  r: number;
  target_modules: string | string[];
  resolved_target_modules: string[];
  tensors: Array<[string, number[]]>;
}

const layout: { cases: LayoutCase[] } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/lora_peft_layout.json", import.meta.url)),
);

for (const c of layout.cases) {
  Deno.test(`adapter files follow PEFT's names and shapes (${c.base}, ${c.target_modules})`, async () => {
    const config = configFromHf((await readFixture(c.base)).config);
    const options = {
      r: c.r,
      alpha: 16,
      dropout: 0.1,
      targetModules: resolveTargetModules(c.target_modules),
    };
    const slots = loraLayout(config, options).slots.map((s) => [s.name, s.shape]);
    if (JSON.stringify(slots) !== JSON.stringify(c.tensors)) {
      throw new Error(`layout ${JSON.stringify(slots)}\nPEFT    ${JSON.stringify(c.tensors)}`);
    }
    const store = new MemoryFileStore();
    const weights = new Map(
      c.tensors.map((
        [name, shape],
      ) => [name, { shape, data: new Float32Array(shape[0] * shape[1]) }]),
    );
    await saveAdapter(store, "out", options, weights, "base-dir");
    const header = parseSafetensorsHeader(await store.readFile(`out/${ADAPTER_WEIGHTS_FILE}`));
    const saved = header.entries.map((e) => [e.name, e.shape, e.dtype]).sort();
    const expected = c.tensors.map(([n, s]) => [n, s, "F32"]).sort();
    if (JSON.stringify(saved) !== JSON.stringify(expected)) throw new Error("saved tensors differ");
    const cfg = JSON.parse(await store.readText(`out/${ADAPTER_CONFIG_FILE}`));
    const want = {
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: c.r,
      lora_alpha: 16,
      bias: "none",
    };
    for (const [k, v] of Object.entries(want)) {
      if (cfg[k] !== v) throw new Error(`adapter_config.json ${k} = ${cfg[k]}, want ${v}`);
    }
    if ([...cfg.target_modules].sort().join() !== c.resolved_target_modules.join()) {
      throw new Error(`target_modules ${cfg.target_modules}`);
    }
    if (cfg.lora_dropout !== 0.1 || cfg.base_model_name_or_path !== "base-dir") {
      throw new Error("lora_dropout / base_model_name_or_path not recorded");
    }
    const back = await readAdapter(store, "out", config);
    if (back.options.r !== c.r || back.weights.size !== c.tensors.length) {
      throw new Error("the adapter did not read back as written");
    }
  });
}

Deno.test("an adapter PEFT options this library cannot apply is refused with the field", async () => {
  const f = await readFixture("model_qwen2_bias_untied.json");
  const config = configFromHf(f.config);
  const options = { r: 2, alpha: 4, dropout: 0, targetModules: resolveTargetModules("q_proj") };
  const store = new MemoryFileStore();
  const zeros = new Map(
    loraLayout(config, options).slots.map((s) => [s.name, {
      shape: s.shape,
      data: new Float32Array(s.size),
    }]),
  );
  await saveAdapter(store, "a", options, zeros, "base");
  const cfg = JSON.parse(await store.readText(`a/${ADAPTER_CONFIG_FILE}`));
  await store.writeFileAtomic(
    `a/${ADAPTER_CONFIG_FILE}`,
    new TextEncoder().encode(JSON.stringify({ ...cfg, use_dora: true })),
  );
  await assertRejects(() => readAdapter(store, "a", config), PeftAdapterError, "use_dora");
  await store.writeFileAtomic(
    `a/${ADAPTER_CONFIG_FILE}`,
    new TextEncoder().encode(JSON.stringify({ ...cfg, r: 3 })),
  );
  await assertRejects(() => readAdapter(store, "a", config), PeftAdapterError, "lora_A", "[3,");
  await assertRejects(
    () => readAdapter(store, "missing", config),
    PeftAdapterError,
    "adapter_config.json not found",
  );
});

Deno.test("the merged model computes what base + adapter computes (CPU float64)", async () => {
  const lora = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/lora_llama_all_linear.json", import.meta.url)),
  );
  const base = await readFixture(lora.base);
  const config = configFromHf(base.config);
  const batch = fixtureBatch(base);
  const backend = cpu("f64");
  const options = {
    r: lora.lora.r,
    alpha: lora.lora.lora_alpha,
    dropout: lora.lora.lora_dropout,
    targetModules: resolveTargetModules(lora.lora.target_modules),
  };
  const baseWeights = new Map(Object.entries(base.params));
  const adapter = new Map(Object.entries(lora.lora_params)) as Map<
    string,
    { shape: number[]; data: number[] }
  >;
  const merged = new LlamaModel(backend, config, {
    maxBatch: batch.rows,
    maxSeqLen: batch.T,
    trainable: false,
  });
  merged.params.writeAll(mergeAdapter(config, baseWeights, options, adapter));
  merged.setBatch(batch);
  merged.forward();
  const got = (await backend.read(merged.acts.seqLogps)).slice(0, batch.rows);
  // The merged weights are rounded to f32 once (as a saved model is), hence 1e-5, not 1e-12.
  assertClose(got, lora.expected.seq_logps_eval_f64, { atol: 1e-5, rtol: 0, label: "merged" });
  const unchanged = mergeAdapter(config, baseWeights, options, adapter)
    .get("model.embed_tokens.weight")!;
  assertClose(unchanged.data, base.params["model.embed_tokens.weight"].data, {
    atol: 0,
    rtol: 0,
    label: "untouched weights stay",
  });
});
