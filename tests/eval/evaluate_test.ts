/**
 * evaluateModel on tiny random models with the word-level fixture tokenizer: finite numbers of
 * the right ranges, a reference against itself (KL 0, implicit rewards 0, accuracy 0, loss ln 2),
 * reproducibility for fixed seeds, the report shapes, the same numbers on WebGPU as on the CPU,
 * and `deno task eval` on a temporary model folder (exit 0 with JSON, exit 2 on bad input).
 */

import assert from "node:assert/strict";
import { sentimentReward } from "../../src/world/reward.ts";
import { assertClose, cpu, gpuTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { loadTokenizer, type PreferenceExample, tokenizePreference } from "../../src/data/mod.ts";
import { configFromHf, configToHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { saveCheckpoint } from "../../src/io/checkpoint.ts";
import { copyTokenizerFiles } from "../../src/model/model_folder.ts";
import {
  encodePrompts,
  evalCapacity,
  evalTable,
  evaluateModel,
  type EvaluateOptions,
  pairMetrics,
  sideBySide,
} from "../../src/eval/evaluate.ts";
import { makeTinyWorld, store } from "../pipeline/tiny_world.ts";

const FIXTURE = new URL("../fixtures/data_tokenizer", import.meta.url).pathname;
const tokenizer = await loadTokenizer(store, FIXTURE);
const HF_CONFIG = {
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
  max_position_embeddings: 64,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 3,
};
const CONFIG = configFromHf(HF_CONFIG);
const PROMPTS = encodePrompts(tokenizer, [
  "the sky is",
  "i can not tell",
  "good",
  "what color is it ?",
  "tell me about paris",
]);
const PAIRS: PreferenceExample[] = tokenizePreference(
  [
    ["the sky is", " blue", " red"],
    ["is it good ?", " yes good", " no bad"],
    ["tell me", " good good", " bad"],
  ].map(([prompt, chosen, rejected], i) => ({
    kind: "standard" as const,
    file: "pairs",
    line: i + 1,
    prompt,
    chosen,
    rejected,
  })),
  tokenizer,
).examples;
const OPTIONS: EvaluateOptions = {
  seeds: [0, 1],
  maxNewTokens: 6,
  batchSize: 4,
  pairs: PAIRS,
  reward: sentimentReward,
};

function tinyModel(backend: Backend, seed: number): LlamaModel {
  const model = new LlamaModel(backend, CONFIG, evalCapacity(PROMPTS, OPTIONS));
  model.params.writeAll(initWeights(model.layout, { seed, std: 0.3 }));
  return model;
}

Deno.test("evaluateModel reports finite reward, KL, length and pair metrics", async () => {
  const backend = cpu();
  const policy = tinyModel(backend, 5), reference = tinyModel(backend, 6);
  const e = await evaluateModel(policy, reference, tokenizer, PROMPTS, OPTIONS);
  assert.equal(e.prompts, 5);
  assert.deepEqual(e.seeds, [0, 1]);
  assert.equal(e.rewardBySeed.length, 2);
  assert.ok(e.rewardBySeed.every((r) => r >= 0 && r <= 1), `rewards ${e.rewardBySeed}`);
  assert.ok(Number.isFinite(e.rewardStd) && e.rewardStd >= 0);
  assert.ok(e.kl > 0 && Number.isFinite(e.kl), `KL ${e.kl}`);
  assert.ok(e.klBySeed.every((k) => k > 0));
  assert.ok(Number.isFinite(e.logRatio));
  assert.ok(e.length >= 1 && e.length <= 6, `length ${e.length}`);
  assert.ok(e.eosFraction >= 0 && e.eosFraction <= 1);
  assert.equal(e.samples.length, 4);
  assert.ok(e.samples.every((s) => typeof s.completion === "string" && s.tokens >= 1));
  const p = e.pairs!;
  assert.equal(p.count, 3);
  assert.ok(p.accuracy >= 0 && p.accuracy <= 1);
  for (const x of [p.margin, p.loss, p.chosenLogps, p.rejectedLogps]) assert.ok(Number.isFinite(x));
  assert.ok(p.chosenLogps < 0 && p.rejectedLogps < 0);
  assert.ok(!e.isReference);
});

Deno.test("a reference against itself has KL 0, implicit rewards 0 and loss ln 2", async () => {
  const backend = cpu();
  const reference = tinyModel(backend, 6);
  const e = await evaluateModel(reference, reference, tokenizer, PROMPTS, OPTIONS);
  assert.equal(e.kl, 0);
  assert.equal(e.logRatio, 0);
  assert.ok(e.isReference);
  assert.equal(e.pairs!.accuracy, 0);
  assert.equal(e.pairs!.margin, 0);
  assert.ok(Math.abs(e.pairs!.loss - Math.LN2) < 1e-12);
});

Deno.test("evaluateModel is reproducible for fixed seeds and differs across seeds", async () => {
  const backend = cpu();
  const policy = tinyModel(backend, 5), reference = tinyModel(backend, 6);
  const a = await evaluateModel(policy, reference, tokenizer, PROMPTS, OPTIONS);
  const b = await evaluateModel(policy, reference, tokenizer, PROMPTS, OPTIONS);
  const { seconds: _a, timings: _ta, ...restA } = a;
  const { seconds: _b, timings: _tb, ...restB } = b;
  assert.deepEqual(restA, restB);
  assert.notDeepEqual(a.klBySeed[0], a.klBySeed[1]);
});

Deno.test("pairMetrics follows the DPO definitions (β = 0.1, DESIGN.md's numbers)", () => {
  const m = pairMetrics([-0.5, -10, -1], [-0.1, -30, -21], [-0.5, -10.1, -0.1], [
    -0.1,
    -20.1,
    -0.1,
  ], 0.1);
  // Per-pair losses 0.6931, 0.3133, 0.1269; margins 0, 1.01, 1.99; accuracy 2/3 (strict).
  assert.ok(Math.abs(m.loss - (0.69315 + 0.31326 + 0.12693) / 3) < 1e-4, `loss ${m.loss}`);
  assert.ok(Math.abs(m.accuracy - 2 / 3) < 1e-12);
  assert.ok(Math.abs(m.margin - 1) < 1e-9);
});

Deno.test("evalTable and sideBySide give renderReport's shapes", async () => {
  const backend = cpu();
  const policy = tinyModel(backend, 5), reference = tinyModel(backend, 6);
  const options = { ...OPTIONS, seeds: [0] };
  const ref = await evaluateModel(reference, reference, tokenizer, PROMPTS, options);
  const pol = await evaluateModel(policy, reference, tokenizer, PROMPTS, options);
  const table = evalTable([["SFT", ref], ["DPO", pol]]);
  assert.deepEqual(table.rows.map((r) => r.model), ["SFT", "DPO"]);
  for (const c of table.columns) assert.ok(c in table.rows[1], c);
  assert.equal(table.rows[0]["pref. accuracy"], "—");
  assert.equal(typeof table.rows[1]["KL(π‖ref)"], "number");
  const samples = sideBySide([["SFT", ref], ["DPO", pol]]);
  assert.equal(samples.length, 4);
  assert.equal(samples[0].prompt, "the sky is");
  assert.deepEqual(Object.keys(samples[0].columns), ["SFT", "DPO"]);
});

gpuTest("evaluateModel on WebGPU matches the CPU backend", async (gpu) => {
  const options = { ...OPTIONS, seeds: [3] };
  const host = cpu();
  const onCpu = await evaluateModel(
    tinyModel(host, 5),
    tinyModel(host, 6),
    tokenizer,
    PROMPTS,
    options,
  );
  const onGpu = await evaluateModel(
    tinyModel(gpu, 5),
    tinyModel(gpu, 6),
    tokenizer,
    PROMPTS,
    options,
  );
  // The samplers draw the same tokens (same noise, near-identical logits), so the rewards and
  // lengths agree exactly and the KLs to f32 accuracy.
  assert.deepEqual(onGpu.samples.map((s) => s.completion), onCpu.samples.map((s) => s.completion));
  assert.equal(onGpu.reward, onCpu.reward);
  assert.equal(onGpu.length, onCpu.length);
  assertClose([onGpu.kl, onGpu.pairs!.chosenLogps], [onCpu.kl, onCpu.pairs!.chosenLogps], {
    atol: 1e-4,
    rtol: 1e-4,
    label: "KL and chosen log-probs",
  });
});

async function runEval(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // Type-checked, so a type error in a task fails here too (cheap once Deno's cache is warm,
      // as after `deno task check`: ~9 s for the CLI tests against ~40 s cold).
      "--check",
      "--unstable-webgpu",
      "-A",
      new URL("../../tasks/eval.ts", import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("deno task eval compares a model with its reference and prints JSON", async () => {
  await using w = await makeTinyWorld();
  // A second model: the same config, other weights.
  const other = `${w.dir}/other`;
  await saveCheckpoint(
    store,
    other,
    configToHf(CONFIG),
    initWeights(new LlamaModel(cpu(), CONFIG, { maxBatch: 1, maxSeqLen: 1 }).layout, {
      seed: 9,
      std: 0.2,
    }),
  );
  await copyTokenizerFiles(store, FIXTURE, other);
  const prompts = `${w.dir}/prompts.jsonl`;
  await Deno.writeTextFile(
    prompts,
    ["the sky is", "is it good", "tell me"].map((p) => JSON.stringify({ prompt: p })).join("\n"),
  );
  const base = ["--model", other, "--ref-model", w.base, "--data", prompts];
  const r = await runEval([
    ...base,
    "--pairs",
    w.prefsEval,
    "--seeds",
    "2",
    "--max-new-tokens",
    "5",
    "--device",
    "cpu",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.equal(json.reference.kl, 0);
  assert.ok(json.policy.kl > 0);
  assert.equal(json.policy.seeds.length, 2);
  assert.equal(json.policy.pairs.count, 4);
  assert.equal(json.eval_table.rows.length, 2);
  assert.equal(json.samples.length, 3);
  assert.match(r.stderr, /reward ± sd/);

  const missing = await runEval(["--model", other, "--data", prompts]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--ref-model is required/);
  await Deno.writeTextFile(`${w.dir}/bad.jsonl`, '{"prompt":"the sky"}\n{"text":"x"}\n');
  const bad = await runEval([
    ...base.slice(0, 4),
    "--data",
    `${w.dir}/bad.jsonl`,
    "--device",
    "cpu",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad\.jsonl:2: expected an object with a "prompt" string/);
  const noModel = await runEval(["--model", `${w.dir}/nope`, ...base.slice(2), "--device", "cpu"]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr, /--model/);
});
