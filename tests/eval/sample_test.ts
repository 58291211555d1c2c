/**
 * KV-cache sampling on a random tiny model (std 0.5, so the next-token distributions are peaky):
 * greedy decoding against the argmax of the full forward recomputed on the growing sequence,
 * seeded reproducibility, the top-k / top-p / temperature / EOS / max-new-tokens rules, batch
 * independence, the CPU and WebGPU backends giving the same tokens, and `deno task generate`.
 */

import { deepStrictEqual as assertEquals, notDeepStrictEqual } from "node:assert/strict";
import { assertClose, cpu, gpuTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { configFromHf, configToHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { type GenerateOptions, type Generation, Sampler } from "../../src/eval/sample.ts";
import { saveCheckpoint } from "../../src/io/checkpoint.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";

const HF_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 61,
  hidden_size: 32,
  intermediate_size: 44,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  max_position_embeddings: 64,
  bos_token_id: 1,
  eos_token_id: 2,
};
const TINY = configFromHf(HF_CONFIG);
const WEIGHTS = initWeights(new LlamaModel(cpu(), TINY, { maxBatch: 1, maxSeqLen: 1 }).layout, {
  seed: 7,
  std: 0.5,
});
const PROMPTS = [[1, 8, 9, 10], [1, 17], [1, 25, 26, 27, 28, 30, 31], [1, 40, 41]];

function tinyModel(backend: Backend, maxSeqLen = 1): LlamaModel {
  const model = new LlamaModel(backend, TINY, { maxBatch: 1, maxSeqLen });
  model.params.writeAll(WEIGHTS);
  return model;
}

async function run(
  backend: Backend,
  prompts: number[][],
  options: GenerateOptions,
  batchSize = 4,
): Promise<Generation[]> {
  const sampler = new Sampler(tinyModel(backend), { batchSize, maxLength: 24 });
  return await sampler.generate(prompts, { eosTokenIds: [], ...options });
}

const tokensOf = (g: Generation[]) => g.map((x) => x.tokens);

Deno.test("greedy KV-cache decoding picks the argmax of the full forward at every step", async () => {
  const backend = cpu();
  const maxNew = 10;
  const outs = await run(backend, PROMPTS, { temperature: 0, maxNewTokens: maxNew });
  const V = TINY.vocabSize;
  for (const [n, prompt] of PROMPTS.entries()) {
    const seq = [...prompt, ...outs[n].tokens];
    assertEquals(outs[n].tokens.length, maxNew);
    // Full forward on the whole sequence; targets = the next token, so tokenLogp is its log-prob.
    const T = seq.length;
    const model = tinyModel(backend, T);
    const targets = Int32Array.from(seq, (_, t) => t + 1 < T ? seq[t + 1] : -1);
    model.setBatch({
      inputIds: Int32Array.from(seq),
      targets,
      rows: 1,
      T,
      tokenCounts: new Int32Array(1),
    });
    model.forward();
    const logits = await backend.read(model.acts.logits);
    const tokenLogp = await backend.read(model.acts.tokenLogp);
    for (let j = 0; j < maxNew; j++) {
      const t = prompt.length - 1 + j;
      const row = logits.subarray(t * V, (t + 1) * V);
      const argmax = row.indexOf(Math.max(...row));
      assertEquals(outs[n].tokens[j], argmax, `prompt ${n} token ${j}`);
      // The sampler's log-prob of its token is the forward's (f32, other summation order).
      assertClose([outs[n].logps[j]], [tokenLogp[t]], { atol: 2e-5, rtol: 1e-5, label: "logp" });
    }
  }
});

Deno.test("sampling is reproducible for a seed and changes with the seed", async () => {
  const backend = cpu();
  const options = { temperature: 1, maxNewTokens: 12 };
  const a = await run(backend, PROMPTS, { ...options, seed: 3 });
  const b = await run(backend, PROMPTS, { ...options, seed: 3 });
  const c = await run(backend, PROMPTS, { ...options, seed: 4 });
  assertEquals(tokensOf(a), tokensOf(b));
  notDeepStrictEqual(tokensOf(a), tokensOf(c));
});

Deno.test("top-k 1, a tiny top-p and a tiny temperature all equal greedy decoding", async () => {
  const backend = cpu();
  const greedy = tokensOf(await run(backend, PROMPTS, { temperature: 0, maxNewTokens: 8 }));
  for (const o of [{ topK: 1 }, { topP: 1e-6 }, { temperature: 1e-4 }]) {
    const out = await run(backend, PROMPTS, { temperature: 1.5, maxNewTokens: 8, seed: 9, ...o });
    assertEquals(tokensOf(out), greedy, JSON.stringify(o));
  }
});

Deno.test("a higher temperature gives more varied samples", async () => {
  const backend = cpu();
  const prompts = Array.from({ length: 24 }, () => [1, 8]);
  const distinct = async (temperature: number) => {
    const out = await run(backend, prompts, { temperature, maxNewTokens: 4, seed: 1 }, 24);
    return new Set(out.map((g) => g.tokens.join())).size;
  };
  const cold = await distinct(0.3), hot = await distinct(3);
  if (!(hot > cold)) throw new Error(`distinct completions: T=3 gave ${hot}, T=0.3 gave ${cold}`);
});

Deno.test("EOS ends a row (the others continue) and max new tokens is respected", async () => {
  const backend = cpu();
  const greedy = await run(backend, PROMPTS, { temperature: 0, maxNewTokens: 9 });
  // Make row 0's third greedy token an EOS id that no other row produces before its end.
  const eos = greedy[0].tokens[2];
  const out = await run(backend, PROMPTS, { temperature: 0, maxNewTokens: 9, eosTokenIds: [eos] });
  assertEquals(out[0].finishReason, "eos");
  for (let n = 0; n < PROMPTS.length; n++) {
    const cut = greedy[n].tokens.indexOf(eos);
    const expected = cut < 0 ? greedy[n].tokens : greedy[n].tokens.slice(0, cut + 1);
    assertEquals(out[n].tokens, expected);
    assertEquals(out[n].logps.length, expected.length);
  }
  const short = await run(backend, PROMPTS, { temperature: 1, maxNewTokens: 3, seed: 2 });
  for (const g of short) assertEquals([g.tokens.length, g.finishReason], [3, "length"]);
});

Deno.test("a batch of prompts of different lengths equals running each prompt alone", async () => {
  const backend = cpu();
  const options = { temperature: 1.2, topP: 0.95, maxNewTokens: 10, seed: 5 };
  const batched = await run(backend, PROMPTS, options);
  for (const [n, prompt] of PROMPTS.entries()) {
    // Stream ids follow the prompt's index, so a prompt run alone uses firstStream = n.
    const alone = await run(backend, [prompt], { ...options, firstStream: n }, 1);
    assertEquals(alone[0].tokens, batched[n].tokens);
    assertClose(alone[0].logps, batched[n].logps, { atol: 0, rtol: 0, label: `prompt ${n}` });
  }
  // Batches of 3 (4 prompts: a full batch then a batch of one) give the same tokens too.
  assertEquals(tokensOf(await run(backend, PROMPTS, options, 3)), tokensOf(batched));
});

gpuTest("WebGPU sampling gives the CPU's tokens (greedy and seeded top-k / top-p)", async (gpu) => {
  for (
    const options of [
      { temperature: 0, maxNewTokens: 10 },
      { temperature: 1, maxNewTokens: 10, seed: 21 },
      { temperature: 0.8, topK: 10, topP: 0.9, maxNewTokens: 10, seed: 22 },
    ]
  ) {
    const onCpu = await run(cpu(), PROMPTS, options);
    const onGpu = await run(gpu, PROMPTS, options);
    assertEquals(tokensOf(onGpu), tokensOf(onCpu), JSON.stringify(options));
    // f32 on both, other summation orders: log-probs agree to f32 rounding of a few layers.
    assertClose(onGpu.flatMap((g) => g.logps), onCpu.flatMap((g) => g.logps), {
      atol: 1e-4,
      rtol: 1e-4,
      label: "logps",
    });
  }
});

Deno.test("deno task generate prints one JSON line per prompt, reproducibly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fs = new DenoFileStore();
    const tensors = new Map([...WEIGHTS].map(([name, t]) => [name, t]));
    await saveCheckpoint(fs, dir, { ...configToHf(TINY) }, tensors);
    for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(`tests/fixtures/data_tokenizer/${name}`, `${dir}/${name}`);
    }
    await Deno.writeTextFile(
      `${dir}/prompts.jsonl`,
      ['{"prompt": "the sky is"}', '{"prompt": "what color"}', ""].join("\n"),
    );
    const args = [
      "run",
      "-A",
      "tasks/generate.ts",
      "--model",
      dir,
      "--prompts",
      `${dir}/prompts.jsonl`,
      "--device",
      "cpu",
      "--max-new-tokens",
      "5",
      "--seed",
      "3",
      "--json",
    ];
    const runTask = async () => {
      const out = await new Deno.Command(Deno.execPath(), { args, stderr: "piped" }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      if (out.code !== 0) throw new Error(`generate exited ${out.code}: ${stderr}`);
      return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
    };
    const rows = await runTask();
    assertEquals(rows.map((r) => r.prompt), ["the sky is", "what color"]);
    for (const r of rows) {
      if (typeof r.completion !== "string" || !(r.tokens.length >= 1 && r.tokens.length <= 5)) {
        throw new Error(`bad row ${JSON.stringify(r)}`);
      }
    }
    assertEquals(await runTask(), rows);
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/generate.ts", "--model", dir],
      stderr: "piped",
    }).output();
    assertEquals(bad.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
