/**
 * Sampling from a {@link LlamaModel} with a KV cache, batched and on the device: temperature,
 * top-k, top-p, max new tokens, stop at EOS, seeded and reproducible (HF `generate` semantics,
 * see src/cpu/decode.ts for the exact rules).
 *
 * How a batch runs: prompts are left-aligned, every row starts at position 0 and each step feeds
 * one token per row through the whole model (embedding, per layer RMSNorm, q/k/v projections,
 * RoPE at the row's position, cache append, one-query attention over the cache, o_proj, MLP,
 * final norm, LM head) and then the sampling kernel, which writes the row's next input token: the
 * next prompt token while the row is still in its prompt (so the prefill runs token by token
 * through the decode path, simple and fine for short prompts), else a sampled token, which is
 * also appended to the outputs. Positions, counters and done flags stay on the device; steps are
 * recorded and submitted without readback, the done flags are read every `checkEvery` steps to
 * stop early, and the tokens are read once at the end of the batch.
 *
 * Reproducibility: the noise of a draw is a hash of (seed, stream, step), where a sequence's
 * stream is its index in the prompt list and the step its own generated count, and every row is
 * computed independently of the others; so a prompt gets the same completion whatever the batch
 * size or the other prompts (on one backend).
 *
 * @module
 */

import {
  type Backend,
  type DecodeRows,
  ROW_STATE,
  type SampleSettings,
  type Tensor,
} from "../backend/mod.ts";
import type { LlamaModel } from "../model/llama.ts";
import { ropeTables } from "../model/rope_tables.ts";

/** Options of {@link Sampler.generate} and {@link generate}. */
export interface GenerateOptions {
  /** Tokens generated per prompt at most (the EOS token, when produced, is included). @default 64 */
  maxNewTokens?: number;
  /** Logits are divided by it before top-k / top-p; 0 = greedy decoding. @default 1 */
  temperature?: number;
  /** Keep only the k most likely tokens (ties included); 0 = off. @default 0 */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches p; 1 = off. @default 1 */
  topP?: number;
  /** Seed of the sampling noise (u32). @default 0 */
  seed?: number;
  /** Ids that end a completion. @default the model config's eos_token_id (none if null) */
  eosTokenIds?: readonly number[];
  /** Token fed by finished rows (never returned). @default pad_token_id, else the first EOS, else 0 */
  padTokenId?: number;
  /** Stream id of the first prompt; prompt i uses `firstStream + i`. @default 0 */
  firstStream?: number;
  /** Read the done flags every this many steps to stop a batch early (one readback each). @default 16 */
  checkEvery?: number;
  /** Called after each batch with the number of prompts completed and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** One completion. */
export interface Generation {
  /** Generated token ids (an EOS that ended it included). */
  tokens: number[];
  /** log_softmax of the model's logits (temperature 1, no filtering) at each generated token. */
  logps: number[];
  /** `"eos"` when an EOS id ended it, else `"length"` (max new tokens reached). */
  finishReason: "eos" | "length";
}

/** Capacity of a {@link Sampler}. */
export interface SamplerOptions {
  /** Rows decoded at once. @default 64 */
  batchSize?: number;
  /** Longest prompt plus max new tokens. @default 256 */
  maxLength?: number;
}

/**
 * Decoding state for one model: its own KV cache (layers × B × L × Hkv × D for k and for v),
 * one-position activations and row state, allocated once; the weights are the model's own arena.
 *
 * @example
 * ```ts
 * const sampler = new Sampler(model, { batchSize: 8, maxLength: 64 });
 * const [out] = await sampler.generate([tokenizer.encode("the movie was")], { seed: 1 });
 * tokenizer.decode(out.tokens);
 * ```
 */
export class Sampler {
  /** Rows sampled at once. */
  readonly batchSize: number;
  /** Most tokens of prompt and completion a row holds. */
  readonly maxLength: number;
  readonly #backend: Backend;
  readonly #t: Record<string, Tensor>;
  readonly #kCache: Tensor[] = [];
  readonly #vCache: Tensor[] = [];

  /** A sampler for `model`, with its KV cache allocated for `batchSize` rows of `maxLength`. */
  constructor(
    readonly model: LlamaModel,
    { batchSize = 64, maxLength = 256 }: SamplerOptions = {},
  ) {
    const backend = this.#backend = model.backend;
    const c = model.config;
    const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = c;
    const B = this.batchSize = batchSize;
    const L = this.maxLength = maxLength;
    const f = (n: number) => backend.alloc("activations", n);
    const i = (n: number) => backend.alloc("inputs", n, "i32");
    for (let l = 0; l < c.numLayers; l++) {
      this.#kCache.push(f(B * L * Hkv * D));
      this.#vCache.push(f(B * L * Hkv * D));
    }
    const { cos, sin } = ropeTables(L, D, c.ropeTheta);
    this.#t = {
      x: f(B * C),
      mid: f(B * C),
      ln: f(B * C),
      rstd: f(B),
      q: f(B * H * D),
      k: f(B * Hkv * D),
      v: f(B * Hkv * D),
      attn: f(B * H * D),
      scores: f(B * H * L),
      gate: f(B * F),
      up: f(B * F),
      act: f(B * F),
      logits: f(B * c.vocabSize),
      cos: f(cos.length),
      sin: f(sin.length),
      tokens: i(B),
      positions: i(B),
      rowState: i(B * ROW_STATE),
      prompts: i(B * L),
      outTokens: i(B * L),
      outLogps: f(B * L),
    };
    backend.write(this.#t.cos, cos);
    backend.write(this.#t.sin, sin);
  }

  /**
   * Completes each prompt (token ids, at least one each), in batches of {@link batchSize}.
   * @throws Error when a prompt is empty, holds an id outside the vocabulary, or is longer than
   * `maxLength - maxNewTokens`.
   */
  async generate(
    prompts: readonly number[][],
    options: GenerateOptions = {},
  ): Promise<Generation[]> {
    const settings = this.#settings(options);
    const { firstStream = 0, checkEvery = 16, onProgress } = options;
    const out: Generation[] = [];
    prompts.forEach((p, n) => this.#validate(p, n, settings.maxNewTokens));
    if (settings.maxNewTokens === 0) {
      return prompts.map(() => ({ tokens: [], logps: [], finishReason: "length" }));
    }
    for (let start = 0; start < prompts.length; start += this.batchSize) {
      const chunk = prompts.slice(start, start + this.batchSize);
      out.push(...await this.#runBatch(chunk, firstStream + start, settings, checkEvery));
      onProgress?.(out.length, prompts.length);
    }
    return out;
  }

  #settings(o: GenerateOptions): SampleSettings {
    const cfg = this.model.config;
    const configEos = cfg.eosTokenId === null ? [] : [cfg.eosTokenId].flat();
    const eosTokenIds = [...(o.eosTokenIds ?? configEos)];
    const s: SampleSettings = {
      maxNewTokens: o.maxNewTokens ?? 64,
      temperature: o.temperature ?? 1,
      topK: o.topK ?? 0,
      topP: o.topP ?? 1,
      seed: (o.seed ?? 0) >>> 0,
      eosTokenIds,
      padTokenId: o.padTokenId ?? cfg.padTokenId ?? eosTokenIds[0] ?? 0,
    };
    const bad = (what: string) => {
      throw new RangeError(`generate: ${what}`);
    };
    if (!Number.isInteger(s.maxNewTokens) || s.maxNewTokens < 0) {
      bad(`maxNewTokens must be a non-negative integer, got ${s.maxNewTokens}`);
    }
    if (!(s.temperature >= 0)) bad(`temperature must be >= 0, got ${s.temperature}`);
    if (!Number.isInteger(s.topK) || s.topK! < 0) {
      bad(`topK must be an integer >= 0, got ${s.topK}`);
    }
    if (!(s.topP! > 0 && s.topP! <= 1)) bad(`topP must be in (0, 1], got ${s.topP}`);
    return s;
  }

  #validate(prompt: readonly number[], n: number, maxNew: number): void {
    const V = this.model.config.vocabSize;
    if (prompt.length === 0) {
      throw new Error(`prompt ${n} is empty: give at least one token (e.g. BOS)`);
    }
    if (prompt.length + maxNew > this.maxLength) {
      throw new Error(
        `prompt ${n} has ${prompt.length} tokens; with ${maxNew} new tokens it exceeds the ` +
          `sampler's maxLength ${this.maxLength}: shorten it or create a larger Sampler`,
      );
    }
    const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined) throw new Error(`prompt ${n} holds token id ${bad} outside [0, ${V})`);
  }

  async #runBatch(
    prompts: readonly number[][],
    firstStream: number,
    settings: SampleSettings,
    checkEvery: number,
  ): Promise<Generation[]> {
    const backend = this.#backend, t = this.#t;
    const B = prompts.length, L = this.maxLength, maxNew = settings.maxNewTokens;
    const promptIds = new Int32Array(B * L);
    const rowState = new Int32Array(B * ROW_STATE);
    prompts.forEach((p, b) => {
      promptIds.set(p, b * L);
      rowState.set([0, 0, firstStream + b, p.length], b * ROW_STATE);
    });
    backend.write(t.prompts, promptIds);
    backend.write(t.rowState, rowState);
    backend.write(t.tokens, prompts.map((p) => p[0]));
    backend.write(t.positions, new Int32Array(B));
    backend.write(t.outTokens, new Int32Array(B * maxNew).fill(settings.padTokenId ?? 0));
    backend.write(t.outLogps, new Float32Array(B * maxNew));
    const rows: DecodeRows = {
      tokens: t.tokens,
      positions: t.positions,
      rowState: t.rowState,
      prompts: t.prompts,
      promptStride: L,
      outTokens: t.outTokens,
      outLogps: t.outLogps,
    };
    const longest = Math.max(...prompts.map((p) => p.length));
    const steps = longest + maxNew - 1;
    for (let step = 1; step <= steps; step++) {
      this.#step(B, rows, settings);
      backend.submit();
      if (step < steps && step >= longest && (step - longest + 1) % checkEvery === 0) {
        const state = await backend.read(t.rowState);
        if (prompts.every((_, b) => state[b * ROW_STATE + 1] !== 0)) break;
      }
    }
    const tokens = await backend.read(t.outTokens);
    const logps = await backend.read(t.outLogps);
    const state = await backend.read(t.rowState);
    const eos = new Set(settings.eosTokenIds);
    return prompts.map((_, b) => {
      const n = state[b * ROW_STATE];
      const ids = Array.from(tokens.subarray(b * maxNew, b * maxNew + n));
      return {
        tokens: ids,
        logps: Array.from(logps.subarray(b * maxNew, b * maxNew + n)),
        finishReason: n > 0 && eos.has(ids[n - 1]) ? "eos" : "length",
      };
    });
  }

  /** Records one decode step of B rows: the tokens in `rows.tokens` at `rows.positions`. */
  #step(B: number, rows: DecodeRows, settings: SampleSettings): void {
    const { model } = this, t = this.#t, ops = this.#backend.ops;
    const c = model.config;
    const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = c;
    const L = this.maxLength, eps = c.rmsNormEps;
    const p = (name: string) => model.params.get(name);
    ops.embeddingForward(t.x, t.tokens, p("model.embed_tokens.weight"), B, C);
    for (let l = 0; l < c.numLayers; l++) {
      const w = (s: string) => p(`model.layers.${l}.${s}`);
      const bias = (s: string) => model.params.maybe(`model.layers.${l}.${s}`);
      ops.rmsnormForward({
        out: t.ln,
        rstd: t.rstd,
        x: t.x,
        w: w("input_layernorm.weight"),
        N: B,
        C,
        eps,
      });
      for (
        const [proj, out, width] of [["q", t.q, H * D], ["k", t.k, Hkv * D], [
          "v",
          t.v,
          Hkv * D,
        ]] as const
      ) {
        ops.matmul(out, t.ln, w(`self_attn.${proj}_proj.weight`), B, width, C, {
          transB: true,
          bias: bias(`self_attn.${proj}_proj.bias`),
        });
      }
      ops.ropeAt({ x: t.q, cos: t.cos, sin: t.sin, positions: t.positions, rows: B, H, D });
      ops.ropeAt({ x: t.k, cos: t.cos, sin: t.sin, positions: t.positions, rows: B, H: Hkv, D });
      ops.kvCacheWrite({
        kCache: this.#kCache[l],
        vCache: this.#vCache[l],
        k: t.k,
        v: t.v,
        positions: t.positions,
        B,
        L,
        Hkv,
        D,
      });
      ops.decodeAttention({
        out: t.attn,
        scores: t.scores,
        q: t.q,
        kCache: this.#kCache[l],
        vCache: this.#vCache[l],
        positions: t.positions,
        B,
        L,
        H,
        Hkv,
        D,
      });
      ops.matmul(t.mid, t.attn, w("self_attn.o_proj.weight"), B, C, H * D, { transB: true });
      ops.add(t.mid, t.mid, t.x, B * C);
      ops.rmsnormForward({
        out: t.ln,
        rstd: t.rstd,
        x: t.mid,
        w: w("post_attention_layernorm.weight"),
        N: B,
        C,
        eps,
      });
      ops.matmul(t.gate, t.ln, w("mlp.gate_proj.weight"), B, F, C, { transB: true });
      ops.matmul(t.up, t.ln, w("mlp.up_proj.weight"), B, F, C, { transB: true });
      ops.swigluForward(t.act, t.gate, t.up, B * F);
      ops.matmul(t.x, t.act, w("mlp.down_proj.weight"), B, C, F, { transB: true });
      ops.add(t.x, t.x, t.mid, B * C);
    }
    ops.rmsnormForward({
      out: t.ln,
      rstd: t.rstd,
      x: t.x,
      w: p("model.norm.weight"),
      N: B,
      C,
      eps,
    });
    ops.matmul(t.logits, t.ln, p(model.lmHead), B, c.vocabSize, C, { transB: true });
    ops.sampleTokens(rows, t.logits, B, c.vocabSize, settings);
  }
}

const samplers = new WeakMap<LlamaModel, Sampler>();

/**
 * Completes each prompt with {@link Sampler.generate}, reusing one sampler per model (grown, with
 * fresh buffers, when a call needs more rows or a longer length than the last one held).
 *
 * @example
 * ```ts
 * const outs = await generate(model, [[1, 17, 42], [1, 9]], { maxNewTokens: 20, temperature: 0.7, topP: 0.9, seed: 3 });
 * ```
 */
export async function generate(
  model: LlamaModel,
  prompts: readonly number[][],
  options: GenerateOptions & { batchSize?: number } = {},
): Promise<Generation[]> {
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 64, prompts.length));
  const longest = Math.max(0, ...prompts.map((p) => p.length));
  const maxLength = longest + (options.maxNewTokens ?? 64);
  let sampler = samplers.get(model);
  if (!sampler || sampler.batchSize < batchSize || sampler.maxLength < maxLength) {
    sampler = new Sampler(model, {
      batchSize: Math.max(batchSize, sampler?.batchSize ?? 0),
      maxLength: Math.max(maxLength, sampler?.maxLength ?? 0),
    });
    samplers.set(model, sampler);
  }
  return await sampler.generate(prompts, options);
}
