import assert from "node:assert/strict";
import { CheckpointError, loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import {
  readSafetensors,
  SafetensorsError,
  type TensorData,
  writeSafetensors,
} from "../../src/io/safetensors.ts";

const CONFIG = { model_type: "llama", hidden_size: 4, vocab_size: 3 };

function sampleTensors(): Map<string, TensorData> {
  return new Map<string, TensorData>([
    ["model.embed_tokens.weight", {
      shape: [3, 4],
      data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5),
    }],
    ["model.norm.weight", { shape: [4], data: new Float32Array([1, 0.5, 0.1, 2 ** -130]) }],
    ["lm_head.weight", {
      shape: [3, 4],
      data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
    }],
  ]);
}

function assertSameTensors(
  actual: Map<string, TensorData>,
  expected: Map<string, TensorData>,
): void {
  assert.deepStrictEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    assert.deepStrictEqual(actual.get(name)!.shape, tensor.shape, name);
    assert.deepStrictEqual(actual.get(name)!.data, tensor.data, name);
  }
}

/** A sharded checkpoint in memory: embedding in shard 1, the rest in shard 2 (stored as BF16). */
function shardedStore(): MemoryFileStore {
  const tensors = sampleTensors();
  const first = new Map([...tensors].filter(([name]) => name.startsWith("model.embed")));
  const second = new Map([...tensors].filter(([name]) => !name.startsWith("model.embed")));
  const weightMap: Record<string, string> = {};
  for (const name of first.keys()) weightMap[name] = "model-00001-of-00002.safetensors";
  for (const name of second.keys()) weightMap[name] = "model-00002-of-00002.safetensors";
  return new MemoryFileStore({
    "ckpt/config.json": JSON.stringify(CONFIG),
    "ckpt/model.safetensors.index.json": JSON.stringify({
      metadata: { total_size: 0 },
      weight_map: weightMap,
    }),
    "ckpt/model-00001-of-00002.safetensors": writeSafetensors(first),
    "ckpt/model-00002-of-00002.safetensors": writeSafetensors(second, { dtype: "BF16" }),
  });
}

async function rejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => Error,
  pattern: RegExp,
) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    assert.match((error as Error).message, pattern);
    return true;
  });
}

Deno.test("saveCheckpoint then loadCheckpoint gives back the config and every F32 tensor exactly", async () => {
  const fs = new MemoryFileStore();
  await saveCheckpoint(fs, "runs/sft/final", CONFIG, sampleTensors());
  assert.deepStrictEqual(await fs.list("runs/sft/final"), ["config.json", "model.safetensors"]);
  const { config, tensors } = await loadCheckpoint(fs, "runs/sft/final");
  assert.deepStrictEqual(config, CONFIG);
  assertSameTensors(tensors, sampleTensors());
  // The weights file is what transformers expects: F32 with format pt.
  const { metadata } = readSafetensors(await fs.readFile("runs/sft/final/model.safetensors"));
  assert.deepStrictEqual(metadata, { format: "pt" });
});

Deno.test("saveCheckpoint on disk leaves only config.json and model.safetensors (no temporary file)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint_test_" });
  try {
    const fs = new DenoFileStore();
    await saveCheckpoint(fs, `${dir}/out`, CONFIG, sampleTensors());
    await saveCheckpoint(fs, `${dir}/out`, { ...CONFIG, vocab_size: 3 }, sampleTensors()); // overwrite
    assert.deepStrictEqual(await fs.list(`${dir}/out`), ["config.json", "model.safetensors"]);
    assertSameTensors((await loadCheckpoint(fs, `${dir}/out`)).tensors, sampleTensors());
    assert.ok((await Deno.readTextFile(`${dir}/out/config.json`)).endsWith("}\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sharded checkpoint loads every tensor from the shard its index names", async () => {
  const { tensors } = await loadCheckpoint(shardedStore(), "ckpt");
  assert.deepStrictEqual(
    tensors.get("model.embed_tokens.weight"),
    sampleTensors().get("model.embed_tokens.weight"),
  );
  // Shard 2 was stored as BF16: values come back as their bfloat16 roundings.
  assert.deepStrictEqual([...tensors.get("model.norm.weight")!.data], [
    1,
    0.5,
    0.10009765625,
    2 ** -130,
  ]);
  assert.equal(tensors.size, 3);
});

Deno.test("a missing config.json says which file and what to do", async () => {
  const fs = new MemoryFileStore({ "ckpt/model.safetensors": writeSafetensors(sampleTensors()) });
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    CheckpointError,
    /^ckpt\/config\.json not found: a checkpoint folder needs/,
  );
});

Deno.test("a folder without safetensors weights says to save them as safetensors", async () => {
  const fs = new MemoryFileStore({
    "ckpt/config.json": "{}",
    "ckpt/pytorch_model.bin": new Uint8Array(4),
  });
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    CheckpointError,
    /no model\.safetensors or model\.safetensors\.index\.json in ckpt: PyTorch \.bin weights are not supported; convert them/,
  );
});

Deno.test("a config.json that is not JSON names the file", async () => {
  const fs = new MemoryFileStore({ "ckpt/config.json": "{ model_type: llama" });
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    CheckpointError,
    /^ckpt\/config\.json is not valid JSON/,
  );
});

Deno.test("a shard listed in the index but missing from the folder is named", async () => {
  const fs = shardedStore();
  const index = JSON.parse(await fs.readText("ckpt/model.safetensors.index.json"));
  index.weight_map["model.norm.weight"] = "model-00003-of-00002.safetensors";
  await fs.writeFileAtomic(
    "ckpt/model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify(index)),
  );
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    CheckpointError,
    /ckpt\/model-00003-of-00002\.safetensors not found: .*lists it as a shard; download every shard/,
  );
});

Deno.test("a shard that lacks a tensor its index places there is refused", async () => {
  const fs = shardedStore();
  const index = JSON.parse(await fs.readText("ckpt/model.safetensors.index.json"));
  index.weight_map["lm_head.weight"] = "model-00001-of-00002.safetensors";
  await fs.writeFileAtomic(
    "ckpt/model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify(index)),
  );
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    CheckpointError,
    /model-00001-of-00002\.safetensors has no tensor 'lm_head\.weight', which .* places there/,
  );
});

Deno.test("a truncated weights file is reported with its path", async () => {
  const bytes = writeSafetensors(sampleTensors());
  const fs = new MemoryFileStore({
    "ckpt/config.json": "{}",
    "ckpt/model.safetensors": bytes.subarray(0, bytes.length - 5),
  });
  await rejectsWith(
    loadCheckpoint(fs, "ckpt"),
    SafetensorsError,
    /^ckpt\/model\.safetensors: tensor 'model\.norm\.weight': data_offsets \[96, 112\] run past the end/,
  );
});
