/**
 * The sequence-level KL estimator (src/eval/kl.ts): exactly 0 for a model against itself; the
 * per-position full-vocabulary KL sums equal a direct float64 computation from the hidden states
 * (chunked and unchunked LM head, CPU and WebGPU); and, on a vocabulary of 5 with completions of
 * length 2, the exact identity E_{y~π}[Σ_t KL_t(y)] = Σ_y π(y) log(π(y)/ref(y)) over all 25
 * completions, weighted by π(y) (no sampling noise).
 */

import assert from "node:assert/strict";
import { assertClose, cpu, gpuTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { configFromHf, type ModelConfig } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { type CompletionSequence, SequenceKl } from "../../src/eval/kl.ts";

function tinyConfig(vocab: number): ModelConfig {
  return configFromHf({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: vocab,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: vocab > 10,
    max_position_embeddings: 64,
  });
}

/** A random model; std 0.5 makes the next-token distributions far from uniform. */
function model(backend: Backend, vocab: number, seed: number, maxBatch = 8, maxSeqLen = 16) {
  const config = tinyConfig(vocab);
  const m = new LlamaModel(backend, config, { maxBatch, maxSeqLen });
  m.params.writeAll(initWeights(m.layout, { seed, std: 0.5 }));
  return m;
}

/** Sequences of varied prompt and completion lengths over a vocabulary of V. */
function sequences(V: number, count: number): CompletionSequence[] {
  return Array.from({ length: count }, (_, i) => ({
    promptIds: Array.from({ length: 1 + (i % 4) }, (_, t) => (3 * i + 5 * t + 1) % V),
    completionIds: Array.from({ length: 1 + ((i * 7) % 9) }, (_, t) => (11 * i + 2 * t) % V),
  }));
}

/** Σ over completion positions of KL(softmax(lnf·Wπ) ‖ softmax(lnf'·Wref)) in float64 on the host. */
async function directKl(
  policy: LlamaModel,
  reference: LlamaModel,
  seqs: CompletionSequence[],
): Promise<number[]> {
  const logits = async (m: LlamaModel, seq: number[]) => {
    const T = seq.length, C = m.config.hiddenSize, V = m.config.vocabSize;
    m.setBatch({
      inputIds: Int32Array.from(seq),
      targets: new Int32Array(T).fill(-1),
      rows: 1,
      T,
      tokenCounts: new Int32Array(1),
    });
    m.forward();
    const lnf = await m.backend.read(m.acts.lnf);
    const head = await m.backend.read(m.params.get(m.lmHead));
    return Array.from({ length: T }, (_, t) =>
      Array.from({ length: V }, (_, v) => {
        let s = 0;
        for (let c = 0; c < C; c++) s += lnf[t * C + c] * head[v * C + c];
        return s;
      }));
  };
  const logSoftmax = (row: number[]) => {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    return row.map((x) => x - lse);
  };
  const out: number[] = [];
  for (const s of seqs) {
    const seq = [...s.promptIds, ...s.completionIds];
    const p = await logits(policy, seq), q = await logits(reference, seq);
    let kl = 0;
    for (let t = s.promptIds.length - 1; t < seq.length - 1; t++) {
      const lp = logSoftmax(p[t]), lq = logSoftmax(q[t]);
      kl += lp.reduce((sum, l, v) => sum + Math.exp(l) * (l - lq[v]), 0);
    }
    out.push(kl);
  }
  return out;
}

async function selfKlIsZero(backend: Backend): Promise<void> {
  const seqs = sequences(97, 10);
  const a = model(backend, 97, 3);
  const same = await new SequenceKl(a, a).compute(seqs);
  assert.deepEqual(Array.from(same.kl), new Array(10).fill(0), "one model object");
  // A second model with the same weights: the same computations, so the same bits.
  const twin = await new SequenceKl(a, model(backend, 97, 3)).compute(seqs);
  assert.deepEqual(Array.from(twin.kl), new Array(10).fill(0), "two models, same weights");
  assert.deepEqual(Array.from(twin.policyLogps), Array.from(twin.referenceLogps));
}

Deno.test("sequence KL of a model against itself is exactly 0 on the CPU", async () => {
  await selfKlIsZero(cpu());
});

gpuTest("sequence KL of a model against itself is exactly 0 on WebGPU", async (gpu) => {
  await selfKlIsZero(gpu);
});

async function matchesDirect(backend: Backend, logitsBudget?: number): Promise<void> {
  // Different sizes would be allowed; different seeds give KLs of order 1 per position.
  const policy = model(backend, 97, 3), reference = model(backend, 97, 4);
  const seqs = sequences(97, 13);
  const { kl } = await new SequenceKl(policy, reference, { logitsBudget }).compute(seqs);
  const expected = await directKl(policy, reference, seqs);
  assert.ok(expected.every((x) => x > 0.05), "the two models differ visibly");
  // f32 logits and KL of O(1) per position, sums of up to 9 positions.
  assertClose(kl, expected, { atol: 2e-5, rtol: 2e-5, label: "sequence KL" });
}

Deno.test("per-position KL sums match a direct float64 computation on the CPU", async () => {
  await matchesDirect(cpu());
});

gpuTest("per-position KL sums match a direct float64 computation on WebGPU", async (gpu) => {
  await matchesDirect(gpu);
});

gpuTest("chunked LM head (64-row chunks) gives the same sequence KL on WebGPU", async (gpu) => {
  // 8 sequences of up to 16 tokens = 128 rows, budget of 64 rows: two chunks.
  await matchesDirect(gpu, 64 * 97);
});

/**
 * Vocabulary 5, one prompt, completions of length 2: enumerates the 25 completions, and checks
 * Σ_y π(y) Σ_t KL_t(y) (the estimator's expectation) = Σ_y π(y) (log π(y) - log ref(y)), with
 * log π(y) and log ref(y) from the models' own log-prob head (another code path than klRows).
 */
async function enumerationIdentity(backend: Backend, tolerance: number): Promise<void> {
  const policy = model(backend, 5, 21, 25, 4), reference = model(backend, 5, 22, 25, 4);
  const prompt = [1, 3];
  const all: CompletionSequence[] = [];
  for (let a = 0; a < 5; a++) {
    for (let b = 0; b < 5; b++) all.push({ promptIds: prompt, completionIds: [a, b] });
  }
  const r = await new SequenceKl(policy, reference).compute(all);
  const pi = Array.from(r.policyLogps, Math.exp);
  const mass = pi.reduce((s, p) => s + p, 0);
  assert.ok(Math.abs(mass - 1) < tolerance, `π sums to 1 over the 25 completions (${mass})`);
  const expected = pi.reduce((s, p, i) => s + p * (r.policyLogps[i] - r.referenceLogps[i]), 0);
  const estimated = pi.reduce((s, p, i) => s + p * r.kl[i], 0);
  assert.ok(expected > 0.05, `the sequence KL is not trivial (${expected})`);
  assert.ok(
    Math.abs(estimated - expected) <= tolerance * (1 + expected),
    `E_π[Σ_t KL_t] = ${estimated}, exact sequence KL = ${expected}`,
  );
}

Deno.test("E_π of the per-position KL sum equals the exact sequence KL (V=5, float64)", async () => {
  await enumerationIdentity(cpu("f64"), 1e-12);
});

Deno.test("E_π of the per-position KL sum equals the exact sequence KL (V=5, float32)", async () => {
  await enumerationIdentity(cpu("f32"), 2e-6);
});

gpuTest(
  "E_π of the per-position KL sum equals the exact sequence KL on WebGPU (V=5)",
  async (gpu) => {
    await enumerationIdentity(gpu, 2e-6);
  },
);

Deno.test("SequenceKl refuses models with different vocabularies and too-long sequences", async () => {
  const backend = cpu();
  assert.throws(() => new SequenceKl(model(backend, 97, 1), model(backend, 5, 1)), /vocabulary/);
  const m = model(backend, 97, 1, 2, 4);
  await assert.rejects(
    new SequenceKl(m, m).compute([{ promptIds: [1, 2], completionIds: [3, 4, 5] }]),
    /maxSeqLen 4/,
  );
});
