/**
 * The Llama family (Llama, Qwen2, SmolLM2) as HF transformers computes it, on {@link Backend}: the
 * forward to completion log-probs, the backward from their gradients in reverse (llm.c's layout).
 *
 * Shapes: B sequences of T tokens, N = B*T rows, C hidden, H query heads and Hkv key/value heads
 * of D dims, F MLP width, V vocabulary.
 *
 * @module
 */

import type { TokenBatch } from "../data/collate.ts";
import { type Backend, type Tensor, tokenIndex } from "../backend/mod.ts";
import type { ModelConfig } from "./config.ts";
import { type Activations, allocActivations, DEFAULT_LOGITS_BUDGET } from "./activations.ts";
import { LmHead } from "./lm_head.ts";
import { frozenHalf, ParamArena, type ParamLayout, paramLayout } from "./params.ts";
import { ropeTables } from "./rope_tables.ts";
import { type AdapterChoice, LoraAdapters } from "./lora_adapters.ts";
import type {
  ForwardOptions,
  LlamaModelOptions,
  SequenceScorer,
  TrainableParams,
} from "./model_options.ts";

export type { ForwardOptions, LlamaModelOptions, SequenceScorer, TrainableParams };

/** A Llama-family causal LM on a backend, with its parameters and gradients in arenas. */
export class LlamaModel {
  /** Where each parameter lives in the arenas. */
  readonly layout: ParamLayout;
  /** The parameters, by HF name. */
  readonly params: ParamArena;
  /** The saved activations and scratch of the forward and backward. */
  readonly acts: Activations;
  /** The LoRA adapters, when the model was created with `lora`. */
  readonly lora?: LoraAdapters;
  readonly #grads?: ParamArena;
  readonly #normScratch?: Tensor;
  readonly #head: LmHead;
  readonly #cos: Tensor;
  readonly #sin: Tensor;
  #B = 0;
  #T = 0;

  /** A model of `config` on `backend`; its weights are zero until written (`params.writeAll`). */
  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly options: LlamaModelOptions,
  ) {
    this.layout = paramLayout(config);
    const { maxBatch, maxSeqLen, logitsBudget = DEFAULT_LOGITS_BUDGET, trainable = true } = options;
    this.params = new ParamArena(backend, this.layout, "parameters", frozenHalf(config, options));
    if (trainable && !options.lora) {
      this.#grads = new ParamArena(backend, this.layout, "gradients");
    }
    if (options.lora) {
      this.lora = new LoraAdapters(backend, config, options.lora, maxBatch * maxSeqLen, trainable);
      // The frozen norms' weight gradients go nowhere (rmsnormBackward always writes one).
      if (trainable) this.#normScratch = backend.alloc("activations", config.hiddenSize);
    }
    this.acts = allocActivations(backend, config, maxBatch, maxSeqLen, logitsBudget, {
      trainable,
      checkpointing: options.gradientCheckpointing ?? false,
      lmHead: backend.ops.lmHeadPlan?.(
        maxBatch * maxSeqLen,
        config.vocabSize,
        config.hiddenSize,
        logitsBudget,
      ),
    });
    this.#head = new LmHead(backend, config, this.acts, this.params.get(this.lmHead));
    const { cos, sin } = ropeTables(maxSeqLen, config.headDim, config.ropeTheta);
    this.#cos = backend.alloc("activations", cos.length);
    this.#sin = backend.alloc("activations", sin.length);
    backend.write(this.#cos, cos);
    backend.write(this.#sin, sin);
  }

  /** Parameter gradients, laid out like {@link params}; only for trainable models. */
  get grads(): ParamArena {
    if (!this.#grads) {
      throw new Error(
        this.lora
          ? "the base of a LoRA model is frozen: its gradients are lora.grads"
          : "this model was created with trainable: false",
      );
    }
    return this.#grads;
  }

  /** What the optimizer updates: every parameter, or only the LoRA adapters. */
  get trainable(): TrainableParams {
    if (this.lora) {
      if (!this.lora.grads) throw new Error("this model was created with trainable: false");
      return { layout: this.lora.layout, params: this.lora.params, grads: this.lora.grads };
    }
    return { layout: this.layout, params: this.params, grads: this.grads };
  }

  /** This model's weights as a scorer whose forward adds `adapters` (no dropout). */
  withAdapters(adapters: AdapterChoice): SequenceScorer {
    return {
      backend: this.backend,
      acts: this.acts,
      options: this.options,
      setBatch: (batch) => this.setBatch(batch),
      forward: () => this.forward({ adapters }),
    };
  }

  /**
   * Replaces the rotary tables (T, D/2) computed by {@link ropeTables}, e.g. with PyTorch's own
   * values in tests: torch's float32 cos and sin are not always correctly rounded.
   */
  setRopeTables(cos: ArrayLike<number>, sin: ArrayLike<number>): void {
    this.backend.write(this.#cos, cos);
    this.backend.write(this.#sin, sin);
  }

  /** The LM head weight (V,C): the embedding when tied. */
  get lmHead(): string {
    return this.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  }

  /** Uploads a batch's ids, targets and the embedding-gradient index. */
  setBatch(batch: TokenBatch): void {
    const { rows: B, T } = batch;
    if (B > this.options.maxBatch || T > this.options.maxSeqLen) {
      throw new Error(
        `batch (${B}, ${T}) exceeds the model's allocation (${this.options.maxBatch}, ` +
          `${this.options.maxSeqLen})`,
      );
    }
    const a = this.acts;
    this.backend.write(a.ids, batch.inputIds.subarray(0, B * T));
    this.backend.write(a.targets, batch.targets.subarray(0, B * T));
    if (this.#grads && !this.lora) {
      // The embedding gradient's CSR index (a frozen model never runs the backward).
      const { order, offsets } = tokenIndex(
        batch.inputIds.subarray(0, B * T),
        this.config.vocabSize,
      );
      this.backend.write(a.order, order);
      this.backend.write(a.offsets, offsets);
    }
    this.#B = B;
    this.#T = T;
  }

  /** Records the forward; per-sequence completion log-prob sums land in `acts.seqLogps` (B). */
  forward(options: ForwardOptions = {}): void {
    const { backend, config, acts: a } = this;
    this.lora?.begin(options.adapters ?? "policy", options.dropoutSeed);
    const ops = backend.ops;
    const p = (name: string) => this.params.get(name);
    const B = this.#B, T = this.#T, N = B * T;
    const C = config.hiddenSize;
    const eps = config.rmsNormEps;
    ops.embeddingForward(
      a.layers[0]?.input ?? a.final,
      a.ids,
      p("model.embed_tokens.weight"),
      N,
      C,
    );
    for (let l = 0; l < config.numLayers; l++) this.#layerForward(l, true);
    ops.rmsnormForward({
      out: a.lnf,
      rstd: a.rstdf,
      x: a.final,
      w: p("model.norm.weight"),
      N,
      C,
      eps,
    });
    this.#head.forward(N);
    ops.sequenceSum(a.seqLogps, a.tokenLogp, B, T);
  }

  /**
   * Records the backward of the last {@link forward}, given d(loss)/d(seqLogps) in
   * `acts.seqGrad` (B). Parameter gradients are accumulated into {@link grads}; zero them
   * before the first micro-batch of an optimizer step.
   */
  backward(): void {
    const { backend, config, acts: a, lora } = this;
    const ops = backend.ops;
    const p = (name: string) => this.params.get(name);
    // A LoRA model's base is frozen: no weight gradients but the adapters' (norms write scratch).
    const g = (name: string) => this.#grads?.get(name);
    const gNorm = (name: string) => this.#grads?.get(name) ?? this.#normScratch!;
    const B = this.#B, T = this.#T, N = B * T;
    const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
    const V = config.vocabSize;
    ops.broadcastSequence(a.rowGrad, a.seqGrad, B, T);
    this.#head.backward(N, g(this.lmHead));
    ops.rmsnormBackward({
      dx: a.dRes,
      dw: gNorm("model.norm.weight"),
      dOut: a.dLn,
      x: a.final,
      w: p("model.norm.weight"),
      rstd: a.rstdf,
      N,
      C,
      accumulateDx: false,
    });
    for (let l = config.numLayers - 1; l >= 0; l--) {
      if (a.checkpointing) this.#layerForward(l, false);
      const x = a.layers[l];
      const name = (s: string) => `model.layers.${l}.${s}`;
      const w = (s: string) => p(name(s));
      // dW (out,in) += dY^T @ X (N,in), for a trained base only.
      const dWeight = (s: string, dY: Tensor, X: Tensor, outF: number, inF: number) => {
        const dW = g(name(`${s}.weight`));
        if (dW) ops.matmul(dW, dY, X, outF, inF, N, { transA: true, accumulate: true });
      };
      // MLP: next = mid + down(act).
      ops.matmul(a.dAct, a.dRes, w("mlp.down_proj.weight"), N, F, C);
      lora?.backward(l, "down_proj", x.act, a.dRes, a.dAct, N, F, C);
      dWeight("mlp.down_proj", a.dRes, x.act, C, F);
      ops.swigluBackward(a.dGate, a.dUp, a.dAct, x.gate, x.up, N * F);
      ops.matmul(a.dLn, a.dGate, w("mlp.gate_proj.weight"), N, C, F);
      ops.matmul(a.dLn, a.dUp, w("mlp.up_proj.weight"), N, C, F, { accumulate: true });
      lora?.backward(l, "gate_proj", x.ln2, a.dGate, a.dLn, N, C, F);
      lora?.backward(l, "up_proj", x.ln2, a.dUp, a.dLn, N, C, F);
      dWeight("mlp.gate_proj", a.dGate, x.ln2, F, C);
      dWeight("mlp.up_proj", a.dUp, x.ln2, F, C);
      ops.rmsnormBackward({
        dx: a.dRes,
        dw: gNorm(name("post_attention_layernorm.weight")),
        dOut: a.dLn,
        x: x.mid,
        w: w("post_attention_layernorm.weight"),
        rstd: x.rstd2,
        N,
        C,
        accumulateDx: true,
      });
      // Attention: mid = input + o_proj(attn).
      ops.matmul(a.dAttn, a.dRes, w("self_attn.o_proj.weight"), N, H * D, C);
      lora?.backward(l, "o_proj", x.attn, a.dRes, a.dAttn, N, H * D, C);
      dWeight("self_attn.o_proj", a.dRes, x.attn, C, H * D);
      ops.attentionBackward({
        dq: a.dq,
        dk: a.dk,
        dv: a.dv,
        rowDot: a.rowDot,
        dOut: a.dAttn,
        q: x.q,
        k: x.k,
        v: x.v,
        out: x.attn,
        stats: x.stats,
        B,
        T,
        H,
        Hkv,
        D,
      });
      ops.rope({ x: a.dq, cos: this.#cos, sin: this.#sin, rows: N, T, H, D, inverse: true });
      ops.rope({ x: a.dk, cos: this.#cos, sin: this.#sin, rows: N, T, H: Hkv, D, inverse: true });
      const proj: Array<["q_proj" | "k_proj" | "v_proj", Tensor, number]> = [
        ["q_proj", a.dq, H * D],
        ["k_proj", a.dk, Hkv * D],
        ["v_proj", a.dv, Hkv * D],
      ];
      proj.forEach(([proj, d, width], i) => {
        ops.matmul(a.dLn, d, w(`self_attn.${proj}.weight`), N, C, width, { accumulate: i > 0 });
        lora?.backward(l, proj, x.ln1, d, a.dLn, N, C, width);
        dWeight(`self_attn.${proj}`, d, x.ln1, width, C);
        const dBias = this.#grads?.maybe(name(`self_attn.${proj}.bias`));
        if (dBias) ops.colSum(dBias, d, N, width, true);
      });
      ops.rmsnormBackward({
        dx: a.dRes,
        dw: gNorm(name("input_layernorm.weight")),
        dOut: a.dLn,
        x: x.input,
        w: w("input_layernorm.weight"),
        rstd: x.rstd1,
        N,
        C,
        accumulateDx: true,
      });
    }
    const dEmbed = g("model.embed_tokens.weight");
    if (dEmbed) ops.embeddingBackward(dEmbed, a.dRes, a.order, a.offsets, V, C);
  }

  /**
   * Records layer l's forward from its saved input; `output` false stops before the MLP's down
   * projection, all a gradient-checkpointed backward needs to recompute.
   */
  #layerForward(l: number, output: boolean): void {
    const { backend, config, acts: a, lora } = this;
    const ops = backend.ops;
    const p = (name: string) => this.params.get(name);
    const B = this.#B, T = this.#T, N = B * T;
    const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
    const eps = config.rmsNormEps;
    const x = a.layers[l];
    const w = (s: string) => p(`model.layers.${l}.${s}`);
    const bias = (s: string) => this.params.maybe(`model.layers.${l}.${s}`);
    const next = a.layers[l + 1]?.input ?? a.final;
    ops.rmsnormForward({
      out: x.ln1,
      rstd: x.rstd1,
      x: x.input,
      w: w("input_layernorm.weight"),
      N,
      C,
      eps,
    });
    ops.matmul(x.q, x.ln1, w("self_attn.q_proj.weight"), N, H * D, C, {
      transB: true,
      bias: bias("self_attn.q_proj.bias"),
    });
    lora?.forward(l, "q_proj", x.ln1, x.q, N, C, H * D);
    ops.matmul(x.k, x.ln1, w("self_attn.k_proj.weight"), N, Hkv * D, C, {
      transB: true,
      bias: bias("self_attn.k_proj.bias"),
    });
    lora?.forward(l, "k_proj", x.ln1, x.k, N, C, Hkv * D);
    ops.matmul(x.v, x.ln1, w("self_attn.v_proj.weight"), N, Hkv * D, C, {
      transB: true,
      bias: bias("self_attn.v_proj.bias"),
    });
    lora?.forward(l, "v_proj", x.ln1, x.v, N, C, Hkv * D);
    ops.rope({ x: x.q, cos: this.#cos, sin: this.#sin, rows: N, T, H, D, inverse: false });
    ops.rope({ x: x.k, cos: this.#cos, sin: this.#sin, rows: N, T, H: Hkv, D, inverse: false });
    ops.attentionForward({
      out: x.attn,
      stats: x.stats,
      q: x.q,
      k: x.k,
      v: x.v,
      B,
      T,
      H,
      Hkv,
      D,
    });
    ops.matmul(x.mid, x.attn, w("self_attn.o_proj.weight"), N, C, H * D, { transB: true });
    lora?.forward(l, "o_proj", x.attn, x.mid, N, H * D, C);
    ops.add(x.mid, x.mid, x.input, N * C);
    ops.rmsnormForward({
      out: x.ln2,
      rstd: x.rstd2,
      x: x.mid,
      w: w("post_attention_layernorm.weight"),
      N,
      C,
      eps,
    });
    ops.matmul(x.gate, x.ln2, w("mlp.gate_proj.weight"), N, F, C, { transB: true });
    lora?.forward(l, "gate_proj", x.ln2, x.gate, N, C, F);
    ops.matmul(x.up, x.ln2, w("mlp.up_proj.weight"), N, F, C, { transB: true });
    lora?.forward(l, "up_proj", x.ln2, x.up, N, C, F);
    ops.swigluForward(x.act, x.gate, x.up, N * F);
    if (!output) return;
    ops.matmul(next, x.act, w("mlp.down_proj.weight"), N, C, F, { transB: true });
    lora?.forward(l, "down_proj", x.act, next, N, F, C);
    ops.add(next, next, x.mid, N * C);
  }
}
