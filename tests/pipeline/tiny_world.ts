/**
 * A tiny world for pipeline tests, written into a temporary folder (dpo-world-*, removed when the
 * world is disposed): a random 2-layer model with the word-level test tokenizer, an SFT set and
 * preference sets in TRL's standard format.
 */

import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { configFromHf, configToHf } from "../../src/model/config.ts";
import { paramLayout } from "../../src/model/params.ts";
import { initWeights } from "../../src/model/init.ts";
import { seededRandom } from "../../src/data/sampler.ts";
import { saveCheckpoint } from "../../src/io/checkpoint.ts";
import { copyTokenizerFiles } from "../../src/model/model_folder.ts";

export const store = new DenoFileStore();

const WORDS = [
  "the",
  "sky",
  "is",
  "blue",
  "green",
  "red",
  "hello",
  "world",
  "good",
  "bad",
  "yes",
  "no",
];
const GOOD = ["good", "yes", "blue"];
const BAD = ["bad", "no", "red"];

/**
 * A tiny world's folder and files. `await using w = await makeTinyWorld()` removes the folder
 * when the test's scope ends, pass or fail.
 */
export interface TinyWorld extends AsyncDisposable {
  dir: string;
  base: string;
  sft: string;
  prefs: string;
  prefsEval: string;
}

function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

/** Writes the world; `pairs` training pairs and 4 eval pairs. */
export async function makeTinyWorld(pairs = 12, seed = 3): Promise<TinyWorld> {
  const dir = await Deno.makeTempDir({ prefix: "dpo-world-" });
  const base = `${dir}/base`;
  const config = configFromHf({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 60,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: "silu",
    max_position_embeddings: 64,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 3,
  });
  const weights = initWeights(paramLayout(config), { seed, std: 0.2 });
  await saveCheckpoint(store, base, configToHf(config), weights);
  await copyTokenizerFiles(
    store,
    new URL("../fixtures/data_tokenizer", import.meta.url).pathname,
    base,
  );
  const rand = seededRandom(seed);
  const pick = (xs: string[]) => xs[Math.floor(rand() * xs.length)];
  const phrase = (n: number, from = WORDS) => Array.from({ length: n }, () => pick(from)).join(" ");
  const sftRows = Array.from({ length: 16 }, () => ({
    prompt: phrase(2 + Math.floor(rand() * 3)),
    completion: " " + phrase(2 + Math.floor(rand() * 3)),
  }));
  const pair = () => ({
    prompt: phrase(2 + Math.floor(rand() * 3)),
    chosen: " " + phrase(2 + Math.floor(rand() * 2), GOOD),
    rejected: " " + phrase(2 + Math.floor(rand() * 2), BAD),
  });
  await Deno.writeTextFile(`${dir}/sft.jsonl`, jsonl(sftRows));
  await Deno.writeTextFile(`${dir}/prefs.jsonl`, jsonl(Array.from({ length: pairs }, pair)));
  await Deno.writeTextFile(`${dir}/prefs_eval.jsonl`, jsonl(Array.from({ length: 4 }, pair)));
  return {
    dir,
    base,
    sft: `${dir}/sft.jsonl`,
    prefs: `${dir}/prefs.jsonl`,
    prefsEval: `${dir}/prefs_eval.jsonl`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}
