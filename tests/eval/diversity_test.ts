/**
 * Diversity measures of the evaluation (src/eval/diversity.ts): the entropy of one row and
 * distinct-n against hand computations, and the per-sequence entropy that SequenceKl computes on
 * the device (KL against zero logits, H = log V − KL(p ‖ u)) against a direct float64
 * computation from the hidden states, on the CPU and on WebGPU.
 */

import assert from "node:assert/strict";
import { assertClose, cpu, gpuTest } from "../helpers.ts";
import type { Backend } from "../../src/backend/mod.ts";
import { configFromHf } from "../../src/model/config.ts";
import { LlamaModel } from "../../src/model/llama.ts";
import { initWeights } from "../../src/model/init.ts";
import { type CompletionSequence, SequenceKl } from "../../src/eval/kl.ts";
import { distinctN, entropyFromUniformKl, rowEntropy } from "../../src/eval/diversity.ts";

Deno.test("rowEntropy matches hand computations", () => {
  assertClose([rowEntropy([0, 0])], [Math.LN2], { atol: 1e-15, label: "two equal logits" });
  // p = (1/4, 3/4): H = −(¼ ln ¼ + ¾ ln ¾) = 0.5623351446188083.
  assertClose([rowEntropy([0, Math.log(3)])], [0.5623351446188083], { atol: 1e-14 });
  // Shift invariance and a near one-hot row.
  assertClose([rowEntropy([1000, 1000 + Math.log(3)])], [0.5623351446188083], { atol: 1e-12 });
  assert.ok(rowEntropy([0, -200, -200]) < 1e-80);
  // H = log V − KL(p ‖ uniform) for the one-row identity the device uses.
  assertClose([entropyFromUniformKl(Math.LN2 - 0.5623351446188083, 1, 2)], [0.5623351446188083], {
    atol: 1e-15,
  });
  assert.equal(entropyFromUniformKl(Math.log(7) + 1e-7, 1, 7), 0, "clamped at 0");
});

Deno.test("distinctN counts unique n-grams over all n-grams, inside each sequence", () => {
  // Unigrams 1,2,1,2,1,3: 3 distinct of 6. Bigrams (1,2),(2,1),(1,2),(1,3): 3 of 4.
  assert.equal(distinctN([[1, 2, 1, 2], [1, 3]], 1), 0.5);
  assert.equal(distinctN([[1, 2, 1, 2], [1, 3]], 2), 0.75);
  // No n-gram spans two sequences: (2,2) is not counted.
  assert.equal(distinctN([[1, 2], [2, 3]], 2), 1);
  assert.equal(distinctN([[5, 5, 5, 5]], 2), 1 / 3);
  assert.equal(distinctN([[1], [2]], 2), 0, "no bigrams");
  assert.equal(distinctN([], 1), 0);
  assert.throws(() => distinctN([[1]], 0), RangeError);
});

function model(backend: Backend, vocab: number, seed: number) {
  const config = configFromHf({
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
    tie_word_embeddings: true,
    max_position_embeddings: 64,
  });
  const m = new LlamaModel(backend, config, { maxBatch: 8, maxSeqLen: 16 });
  m.params.writeAll(initWeights(m.layout, { seed, std: 0.5 }));
  return m;
}

/** Σ over completion positions of rowEntropy(lnf · W) in float64, one sequence at a time. */
async function directEntropy(m: LlamaModel, seqs: CompletionSequence[]): Promise<number[]> {
  const out: number[] = [];
  const C = m.config.hiddenSize, V = m.config.vocabSize;
  for (const s of seqs) {
    const seq = [...s.promptIds, ...s.completionIds], T = seq.length;
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
    let h = 0;
    for (let t = s.promptIds.length - 1; t < T - 1; t++) {
      const row = Array.from({ length: V }, (_, v) => {
        let x = 0;
        for (let c = 0; c < C; c++) x += lnf[t * C + c] * head[v * C + c];
        return x;
      });
      h += rowEntropy(row);
    }
    out.push(h);
  }
  return out;
}

async function entropyMatchesDirect(backend: Backend, logitsBudget?: number): Promise<void> {
  const V = 97;
  const seqs: CompletionSequence[] = Array.from({ length: 11 }, (_, i) => ({
    promptIds: Array.from({ length: 1 + (i % 3) }, (_, t) => (5 * i + 3 * t + 2) % V),
    completionIds: Array.from({ length: 1 + ((i * 5) % 8) }, (_, t) => (13 * i + 7 * t) % V),
  }));
  const policy = model(backend, V, 3), reference = model(backend, V, 4);
  const expected = await directEntropy(policy, seqs);
  // Per position H is in (0, log V]; std-0.5 weights keep it visibly below log V.
  seqs.forEach((s, i) => {
    assert.ok(expected[i] > 0 && expected[i] < s.completionIds.length * Math.log(V) - 0.05);
  });
  const pair = await new SequenceKl(policy, reference, { logitsBudget }).compute(seqs);
  assertClose(pair.entropy, expected, { atol: 5e-5, rtol: 2e-5, label: "entropy vs reference" });
  // The policy against itself (one forward): the same entropies, KL exactly 0.
  const self = await new SequenceKl(policy, policy, { logitsBudget }).compute(seqs);
  assertClose(self.entropy, expected, { atol: 5e-5, rtol: 2e-5, label: "entropy vs itself" });
  assert.deepEqual(Array.from(self.kl), new Array(seqs.length).fill(0));
}

Deno.test("SequenceKl's per-sequence entropy matches a float64 computation on the CPU", async () => {
  await entropyMatchesDirect(cpu());
});

gpuTest(
  "SequenceKl's per-sequence entropy matches a float64 computation on WebGPU",
  async (gpu) => {
    await entropyMatchesDirect(gpu);
    await entropyMatchesDirect(gpu, 32 * 97); // chunks of 32 rows
  },
);
