/**
 * The file kinds the fuzzer mutates, each with a valid seed file in an in-memory store and the
 * loader a command would call on it: model weights (model.safetensors), a sharded index
 * (model.safetensors.index.json), config.json, tokenizer.json, a reference cache, and preference
 * datasets in JSONL and Parquet. A case ends as a correct load, or a refusal a command reports as
 * exit 2 (an input error naming the file), or a crash (anything else: the bug the fuzzer hunts).
 */

import { parquetWriteBuffer } from "hyparquet-writer";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { configFromHf, configToHf } from "../../src/model/config.ts";
import { paramLayout } from "../../src/model/params.ts";
import { initWeights } from "../../src/model/init.ts";
import { saveCheckpoint } from "../../src/io/checkpoint.ts";
import { loadModel } from "../../src/model/model_folder.ts";
import { loadTokenizer } from "../../src/data/tokenizer.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { loadDataset } from "../../src/data/dataset.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { INPUT_ERRORS } from "../../tasks/_cli.ts";
import type { Shape } from "./mutate.ts";

/** One kind of file: the file mutated and how it is loaded. */
export interface Kind {
  name: string;
  shape: Shape;
  /** The mutated file's path in the store. */
  file: string;
  load(store: MemoryFileStore): Promise<unknown>;
}

const fixture = (p: string): string => new URL(`../fixtures/${p}`, import.meta.url).pathname;
const WORDS = ["the", "sky", "is", "blue", "good", "bad", "yes", "no", "hello", "world"];

/** The valid files every case starts from, path → bytes. */
export async function seedFiles(): Promise<Record<string, Uint8Array>> {
  const store = new MemoryFileStore();
  const config = configFromHf({
    architectures: ["LlamaForCausalLM"],
    vocab_size: 60,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    max_position_embeddings: 64,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 3,
  });
  await saveCheckpoint(
    store,
    "m",
    configToHf(config),
    initWeights(paramLayout(config), { seed: 1 }),
  );
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await store.writeFileAtomic(`m/${f}`, await Deno.readFile(fixture(`data_tokenizer/${f}`)));
  }
  for (const dir of ["s", "d", "c"]) await store.mkdirp(dir);
  // The same model in two shards and an index, as save_pretrained writes a large one.
  const { tensors } = readSafetensors(await store.readFile("m/model.safetensors"));
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, 5), names.slice(5)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    for (const n of part) weightMap[n] = file;
    await store.writeFileAtomic(
      `s/${file}`,
      writeSafetensors(new Map(part.map((n) => [n, tensors.get(n)!]))),
    );
  }
  await store.writeFileAtomic("s/config.json", await store.readFile("m/config.json"));
  await store.writeFileAtomic(
    "s/model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1)),
  );
  const rows = Array.from({ length: 6 }, (_, i) => ({
    prompt: `${WORDS[i]} ${WORDS[(i + 3) % 10]}`,
    chosen: ` ${WORDS[4]} ${WORDS[6]}`,
    rejected: ` ${WORDS[5]} ${WORDS[(i + 7) % 10]}`,
  }));
  await store.writeFileAtomic(
    "d/prefs.jsonl",
    new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join("\n") + "\n"),
  );
  const columnData = ["prompt", "chosen", "rejected"].map((name) => ({
    name,
    data: rows.map((r) => r[name as keyof typeof r]),
  }));
  await store.writeFileAtomic(
    "d/prefs.parquet",
    new Uint8Array(parquetWriteBuffer({ columnData })),
  );
  await runPrecompute(store, new CpuBackend("f32"), {
    model: "m",
    data: { path: "d/prefs.jsonl" },
    output: "c/ref.bin",
  });
  const files: Record<string, Uint8Array> = {};
  for (const path of store.paths()) files[path] = await store.readFile(path);
  return files;
}

const model = (dir: string) => async (store: MemoryFileStore) => {
  const { model } = await loadModel(store, dir, new CpuBackend("f32"), {
    maxBatch: 2,
    maxSeqLen: 8,
    trainable: false,
  });
  return model.config;
};

/** Every kind, by name. */
export const KINDS: Kind[] = [
  { name: "safetensors", shape: "safetensors", file: "m/model.safetensors", load: model("m") },
  {
    name: "sharded-index",
    shape: "json",
    file: "s/model.safetensors.index.json",
    load: model("s"),
  },
  { name: "config.json", shape: "json", file: "m/config.json", load: model("m") },
  {
    name: "tokenizer.json",
    shape: "json",
    file: "m/tokenizer.json",
    load: async (store) => (await loadTokenizer(store, "m")).encode("the sky is blue"),
  },
  {
    name: "reference-cache",
    shape: "binary",
    file: "c/ref.bin",
    load: async (store) => await decodeCache(await store.readFile("c/ref.bin"), "c/ref.bin"),
  },
  {
    name: "dataset-jsonl",
    shape: "json",
    file: "d/prefs.jsonl",
    load: (store) => loadDataset(store, "d/prefs.jsonl", "preference"),
  },
  {
    name: "dataset-parquet",
    shape: "binary",
    file: "d/prefs.parquet",
    load: (store) => loadDataset(store, "d/prefs.parquet", "preference"),
  },
];

/** How a case ended. */
export type Outcome = "loaded" | "refused" | "unclear" | "crash";

/**
 * A command ends with exit 2 on an input error (tasks/_cli.ts); a refusal is clear when its
 * message names the file (its folder for a model, since a model is a folder of files). A refusal
 * that names no file, or any other error, is a finding.
 */
export function classify(error: unknown, kind: Kind): { outcome: Outcome; message: string } {
  const e = error as Error & { exitCode?: number };
  const message = `${e?.name}: ${e?.message ?? String(error)}`.slice(0, 400);
  const input = e instanceof Error && (e.exitCode === 2 || INPUT_ERRORS.has(e.name));
  if (!input || e.name === "TypeError") return { outcome: "crash", message };
  const dir = kind.file.slice(0, kind.file.indexOf("/"));
  const named = e.message.includes(kind.file) || e.message.includes(`${dir}/`) ||
    e.message.includes(`${dir}:`) || e.message.includes(` ${dir} `);
  return { outcome: named ? "refused" : "unclear", message };
}
