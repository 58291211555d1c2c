/**
 * The deliberate mutations `deno task mutants` applies (tasks/mutants.ts): each replaces an
 * exact snippet of one source file (every occurrence; `count` says how many there must be) and
 * names the test files that must fail against it. Each is a bug a plausible edit could make: a
 * flipped gradient sign, a dropped eps, an off-by-one in a mask, a swapped column, a skipped
 * check. A snippet that no longer matches fails the task loudly: update the entry with the code.
 * Replacements keep the code well-typed (no `if (false)`, which narrows types to never): the
 * CLI tests type-check the tasks they start, and a mutant must be killed by behaviour.
 *
 * @module
 */

/** One mutation of the source. */
export interface Mutation {
  /** What the mutation breaks, in a few words. */
  name: string;
  /** The source file, relative to the repository root. */
  file: string;
  /** The exact text replaced. */
  find: string;
  /** What replaces it. */
  replace: string;
  /** How many times `find` occurs in `file` (all are replaced). @default 1 */
  count?: number;
  /** Test files (relative to the root) that must catch it. */
  tests: string[];
}

export const MUTATIONS: Mutation[] = [
  // --- src/cpu: the reference backend -------------------------------------------------------
  {
    name: "CPU preference gradient sign flipped",
    file: "src/cpu/loss.ts",
    find:
      "seqGrad[i] = scale * P * r.dChosen[i];\n    seqGrad[P + i] = scale * P * r.dRejected[i];",
    replace:
      "seqGrad[i] = -scale * P * r.dChosen[i];\n    seqGrad[P + i] = -scale * P * r.dRejected[i];",
    tests: ["tests/train/direction_test.ts"],
  },
  {
    name: "CPU KTO gradient sign flipped",
    file: "src/cpu/loss.ts",
    find: "seqGrad[i] = scale * B * r.grads[i];",
    replace: "seqGrad[i] = -scale * B * r.grads[i];",
    tests: ["tests/train/direction_test.ts"],
  },
  {
    name: "CPU RMSNorm eps dropped",
    file: "src/cpu/rmsnorm.ts",
    find: "rstd[n] = 1 / Math.sqrt(sumSq / C + eps);",
    replace: "rstd[n] = 1 / Math.sqrt(sumSq / C);",
    tests: ["tests/cpu/rmsnorm_test.ts"],
  },
  {
    name: "CPU attention sees the next token (causal mask off by one)",
    file: "src/cpu/attention.ts",
    find: "for (let s = 0; s <= t; s++)",
    replace: "for (let s = 0; s <= Math.min(t + 1, T - 1); s++)",
    count: 5,
    tests: ["tests/cpu/attention_test.ts", "tests/model/llama_test.ts"],
  },
  {
    name: "CPU RoPE rotates the second half the wrong way",
    file: "src/cpu/rope.ts",
    find: "x[base + i + half] = x2 * c + x1 * s;",
    replace: "x[base + i + half] = x2 * c - x1 * s;",
    tests: ["tests/cpu/rope_test.ts", "tests/model/llama_test.ts"],
  },
  {
    name: "CPU AdamW without the second-moment bias correction",
    file: "src/cpu/optimizer.ts",
    find: "const denom = r(r(r(Math.sqrt(v)) / biasCorrection2Sqrt) + eps);",
    replace: "const denom = r(r(r(Math.sqrt(v))) + eps);",
    tests: ["tests/cpu/optimizer_test.ts"],
  },
  {
    name: "CPU log-softmax gradient without the one-hot target",
    file: "src/cpu/logits.ts",
    find: "const target = targets[r];",
    replace: "const target = targets[r] + 1;",
    count: 2,
    tests: ["tests/cpu/logits_test.ts", "tests/model/llama_test.ts"],
  },
  // --- src/gpu: the WGSL kernels ------------------------------------------------------------
  {
    name: "GPU preference gradient sign flipped",
    file: "src/gpu/kernels/loss.ts",
    find: "seqGrad[i] = u.scale * dChosen;\n    seqGrad[P + i] = u.scale * dRejected;",
    replace: "seqGrad[i] = -u.scale * dChosen;\n    seqGrad[P + i] = -u.scale * dRejected;",
    tests: ["tests/gpu/loss_test.ts", "tests/train/direction_test.ts"],
  },
  {
    name: "GPU KTO reference point not clamped at 0",
    file: "src/gpu/kernels/kto_loss.ts",
    find: "max(0.0, total / f32(B))",
    replace: "total / f32(B)",
    tests: ["tests/pipeline/losses_pipeline_test.ts", "tests/gpu/loss_test.ts"],
  },
  {
    name: "GPU RMSNorm eps dropped (one workgroup per row)",
    file: "src/gpu/kernels/rmsnorm.ts",
    find: "let r = 1.0 / sqrt(rowSum(lid, sumSq) / f32(u.C) + u.eps);",
    replace: "let r = 1.0 / sqrt(rowSum(lid, sumSq) / f32(u.C));",
    tests: ["tests/gpu/rmsnorm_test.ts"],
  },
  {
    name: "GPU RMSNorm eps dropped (one invocation per row)",
    file: "src/gpu/kernels/rmsnorm.ts",
    find: "let r = 1.0 / sqrt(sumSq / f32(u.C) + u.eps);",
    replace: "let r = 1.0 / sqrt(sumSq / f32(u.C));",
    tests: ["tests/gpu/rmsnorm_test.ts"],
  },
  {
    name: "GPU RoPE rotates the second half the wrong way",
    file: "src/gpu/kernels/rope.ts",
    find: "x[lo + halfD] = x2 * c + x1 * s;",
    replace: "x[lo + halfD] = x2 * c - x1 * s;",
    tests: ["tests/gpu/rope_test.ts"],
  },
  {
    name: "GPU AdamW without the second-moment bias correction",
    file: "src/gpu/kernels/optimizer.ts",
    find: "let denom = sqrt(v) / hyper[6] + hyper[3];",
    replace: "let denom = sqrt(v) + hyper[3];",
    tests: ["tests/gpu/optimizer_test.ts"],
  },
  {
    name: "GPU SwiGLU forward without the sigmoid (gate * up)",
    file: "src/gpu/kernels/swiglu.ts",
    find: "dst[i] = g * sigmoid(g) * up[i];",
    replace: "dst[i] = g * up[i];",
    tests: ["tests/gpu/swiglu_test.ts"],
  },
  {
    name: "GPU log-softmax gradient without the softmax term",
    file: "src/gpu/kernels/logits.ts",
    find: "grad = rowGrad[r] * (onehot - exp(logits[i] - lse[r]));",
    replace: "grad = rowGrad[r] * onehot;",
    tests: ["tests/gpu/logits_test.ts"],
  },
  // --- src/model ----------------------------------------------------------------------------
  {
    name: "RoPE inverse frequencies theta^(-i/d) instead of theta^(-2i/d)",
    file: "src/model/rope_tables.ts",
    find: "const exponent = f32(f32(2 * i) / f32(D));",
    replace: "const exponent = f32(f32(i) / f32(D));",
    tests: ["tests/model/rope_tables_test.ts", "tests/model/llama_test.ts"],
  },
  {
    name: "an untied model uses the embedding as its LM head",
    file: "src/model/llama.ts",
    find: 'return this.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";',
    replace: 'return "model.embed_tokens.weight";',
    tests: ["tests/model/llama_test.ts"],
  },
  {
    name: "the attention residual is dropped",
    file: "src/model/llama.ts",
    find: "ops.add(x.mid, x.mid, x.input, N * C);",
    replace: "",
    tests: ["tests/model/llama_test.ts"],
  },
  {
    name: "precomputed scores swap the chosen and rejected columns",
    file: "src/model/scoring.ts",
    find:
      "out.chosenLogps[start + i] = logps[i];\n      out.rejectedLogps[start + i] = logps[P + i];",
    replace:
      "out.chosenLogps[start + i] = logps[P + i];\n      out.rejectedLogps[start + i] = logps[i];",
    tests: ["tests/pipeline/pipeline_test.ts"],
  },
  // --- src/backend (the loss specification) and src/train -----------------------------------
  {
    name: "a listed loss's weight dropped from its gradient",
    file: "src/backend/losses.ts",
    find: "dChosen += w * t.dChosen;",
    replace: "dChosen += t.dChosen;",
    tests: ["tests/pipeline/losses_pipeline_test.ts"],
  },
  {
    name: "IPO's per-token average divides the rejected side by the chosen length",
    file: "src/backend/pair_terms.ts",
    find: "const u = norm ? sw / nw - sl / nl : delta;",
    replace: "const u = norm ? sw / nw - sl / nw : delta;",
    tests: ["tests/backend/losses_test.ts"],
  },
  {
    name: "robust DPO without its 1/(1 - 2ε) normalisation",
    file: "src/backend/pair_terms.ts",
    find: "((1 - eps) * -logSigmoid(z) + eps * logSigmoid(-z)) / (1 - 2 * eps),",
    replace: "((1 - eps) * -logSigmoid(z) + eps * logSigmoid(-z)),",
    tests: ["tests/backend/losses_test.ts"],
  },
  {
    name: "KTO's reference point not clamped at 0",
    file: "src/backend/kto_loss.ts",
    find: 'const kl = lossType === "kto" ? Math.max(0, klSum / B) : 0;',
    replace: 'const kl = lossType === "kto" ? klSum / B : 0;',
    tests: ["tests/backend/losses_test.ts"],
  },
  {
    name: "AdamW without the first-moment bias correction",
    file: "src/backend/hyper.ts",
    find: "out[5] = h.lr / (1 - Math.pow(h.beta1, h.step));",
    replace: "out[5] = h.lr;",
    tests: ["tests/cpu/optimizer_test.ts"],
  },
  {
    name: "warmup starts one step late",
    file: "src/train/schedule.ts",
    find: "if (step < warmup) return step / Math.max(1, warmup);",
    replace: "if (step < warmup) return (step + 1) / Math.max(1, warmup);",
    tests: ["tests/train/schedule_test.ts"],
  },
  {
    name: "preference gradients summed, not averaged, over accumulated micro-batches",
    file: "src/train/trainer.ts",
    find: "scale: 2 / totalSequences,",
    replace: "scale: 2 / B,",
    tests: ["tests/train/trainer_test.ts"],
  },
  // --- src/data -----------------------------------------------------------------------------
  {
    name: "the first completion token gets no target (completion mask off by one)",
    file: "src/data/collate.ts",
    find: "for (let t = Math.max(promptLength - 1, 0); t + 1 < length; t++) {",
    replace: "for (let t = promptLength; t + 1 < length; t++) {",
    tests: ["tests/data/collate_test.ts"],
  },
  {
    name: "token counts include one prompt token",
    file: "src/data/collate.ts",
    find: "tokenCounts[r] = Math.max(length - Math.max(promptLength, 1), 0);",
    replace: "tokenCounts[r] = Math.max(length - Math.max(promptLength, 1) + 1, 0);",
    tests: ["tests/data/collate_test.ts"],
  },
  {
    name: "a preference batch puts the rejected rows first",
    file: "src/data/collate.ts",
    find: "collateSequences([...chosen, ...rejected], options)",
    replace: "collateSequences([...rejected, ...chosen], options)",
    tests: ["tests/data/collate_test.ts"],
  },
  {
    name: "the shuffle never leaves an element in place (Sattolo, not Fisher-Yates)",
    file: "src/data/sampler.ts",
    find: "const j = Math.floor(random() * (i + 1));",
    replace: "const j = Math.floor(random() * i);",
    tests: ["tests/data/sampler_test.ts"],
  },
  {
    name: "an empty rejected completion is accepted",
    file: "src/data/validate.ts",
    find: 'if (rejected.length === 0) return { field: "rejected", problem: "empty completion" };',
    replace: "",
    tests: ["tests/data/validate_test.ts"],
  },
  // --- src/cache ----------------------------------------------------------------------------
  {
    name: "a cache built from other data is not stale",
    file: "src/cache/identity.ts",
    find: "} else if (cached.dataset_fingerprint !== s.fingerprint) {",
    replace: "} else if (cached.dataset_fingerprint !== cached.dataset_fingerprint) {",
    tests: ["tests/pipeline/cli_test.ts"],
  },
  {
    name: "a cache built with another tokenizer is not stale",
    file: "src/cache/identity.ts",
    find: "if (header.tokenizer_fingerprint !== prepared.tokenizerFingerprint) {",
    replace: "if (header.tokenizer_fingerprint !== header.tokenizer_fingerprint) {",
    tests: ["tests/pipeline/cli_test.ts"],
  },
  {
    name: "the cache's payload checksum is not verified",
    file: "src/cache/reference_cache.ts",
    find: "if (await sha256Hex(payload) !== header.payload_sha256) {",
    replace: "if (header.payload_sha256 !== header.payload_sha256) {",
    tests: ["tests/pipeline/cli_test.ts"],
  },
  {
    name: "the cache's chosen and rejected columns are read swapped",
    file: "src/cache/columns.ts",
    find: "[chosen[offset + i], rejected[offset + i]]",
    replace: "[rejected[offset + i], chosen[offset + i]]",
    tests: ["tests/pipeline/pipeline_test.ts"],
  },
  // --- src/io -------------------------------------------------------------------------------
  {
    name: "bf16 rounds ties up instead of to even",
    file: "src/io/half.ts",
    find: "const roundingBias = 0x7fff + ((bits >>> 16) & 1);",
    replace: "const roundingBias = 0x8000;",
    tests: ["tests/io/safetensors_test.ts"],
  },
  {
    name: "safetensors offsets past the end of the file are accepted",
    file: "src/io/safetensors.ts",
    find: "if (end > dataLength) {",
    replace: "if (end < 0) {",
    tests: ["tests/io/safetensors_test.ts"],
  },
  {
    name: "fingerprints depend on the order of object keys",
    file: "src/io/hash.ts",
    find: "for (const key of Object.keys(value).sort()) {",
    replace: "for (const key of Object.keys(value)) {",
    tests: ["tests/io/hash_test.ts"],
  },
  {
    name: "a running process's lock is taken over",
    file: "src/io/lock.ts",
    find: 'if (typeof holder?.pid === "number" && await store.processAlive(holder.pid)) {',
    replace: 'if (typeof holder?.pid === "number" && holder.pid < 0) {',
    tests: ["tests/pipeline/faults_test.ts"],
  },
];
