/**
 * Hostile sizes in config.json are refused from the safetensors headers, before anything is
 * built: each refusal names config.json, the field and the value, and comes back at once
 * (10^8 layers was a V8 fatal out-of-memory, 10^6 a hang, 10^12 / 10^9 an allocation failure).
 */

import assert from "node:assert/strict";
import { readModelFolder } from "../../src/model/model_folder.ts";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { makeTinyWorld, store } from "../pipeline/tiny_world.ts";

async function withConfig(dir: string, change: Record<string, unknown>): Promise<void> {
  const path = `${dir}/config.json`;
  const config = JSON.parse(await Deno.readTextFile(path));
  await Deno.writeTextFile(path, JSON.stringify({ ...config, ...change }));
}

const HOSTILE: [string, number][] = [
  ["num_hidden_layers", 1e8],
  ["num_hidden_layers", 1e6],
  ["vocab_size", 1e12],
  ["intermediate_size", 1e12],
  ["hidden_size", 1e9],
  ["head_dim", 1e9],
  ["num_attention_heads", 2 ** 30],
  ["max_position_embeddings", 1e15],
];

for (const [field, value] of HOSTILE) {
  Deno.test(`config.json's ${field} = ${value} is refused from the headers, naming it`, async () => {
    await using w = await makeTinyWorld();
    await withConfig(w.base, {
      [field]: value,
      ...(field === "hidden_size" ? { head_dim: 4 } : {}),
    });
    const started = performance.now();
    await assert.rejects(() => readModelFolder(store, w.base), (e: Error) => {
      assert.ok(["ConfigError", "CheckpointError"].includes(e.name), `${e.name}: ${e.message}`);
      assert.match(e.message, new RegExp(`${w.base}/config\\.json`));
      assert.match(e.message, new RegExp(field.replace(/_/g, "_")));
      return true;
    });
    assert.ok(performance.now() - started < 2000, "refused at once");
  });
}

Deno.test("a missing tensor or a wrong shape is found from the header, naming file and tensor", async () => {
  await using w = await makeTinyWorld();
  const file = `${w.base}/model.safetensors`;
  const { tensors } = readSafetensors(await Deno.readFile(file), { file });
  const without = new Map(tensors);
  without.delete("model.layers.1.mlp.up_proj.weight");
  await Deno.writeFile(file, writeSafetensors(without));
  await assert.rejects(
    () => readModelFolder(store, w.base),
    (e: Error) => {
      assert.equal(e.name, "CheckpointError");
      assert.match(e.message, /model\.safetensors has no tensor 'model\.layers\.1\.mlp\.up_proj/);
      return true;
    },
  );
  const reshaped = new Map(tensors);
  const gate = tensors.get("model.layers.0.mlp.gate_proj.weight")!;
  reshaped.set("model.layers.0.mlp.gate_proj.weight", { shape: [12, 32], data: gate.data });
  await Deno.writeFile(file, writeSafetensors(reshaped));
  await assert.rejects(() => readModelFolder(store, w.base), (e: Error) => {
    assert.equal(e.name, "ConfigError");
    assert.match(e.message, /config\.json: intermediate_size: 24 makes .*gate_proj.* \[12,32\]/);
    return true;
  });
});
