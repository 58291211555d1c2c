/**
 * The LM head of the Llama model: logits = lnf (N,C) @ W (V,C)^T reduced to per-row log-sum-exp
 * and target log-probs, and its backward into d(lnf) and dW, in one of two forms, both with no
 * (N, V) logits buffer for a long vocabulary:
 *
 * - fused, where the backend offers it (`Ops.lmHeadForward`, the WebGPU backend on hardware
 *   layouts): chunks of the vocabulary, logits reduced where they are computed and recomputed in
 *   the backward, sized by the backend's plan (`acts.vocabChunk`);
 * - unfused otherwise (the software default): chunks of `acts.chunkRows` rows, each a matmul into
 *   the (rows, V) logits chunk and its row statistics; the backward recomputes a chunk's logits
 *   unless all rows fit one chunk.
 *
 * The two sum in different orders, so they agree to f32 rounding, not bit for bit.
 *
 * @module
 */

import type { Backend, Tensor } from "../backend/mod.ts";
import type { ModelConfig } from "./config.ts";
import type { Activations } from "./activations.ts";

/** The head over a model's activations and head weight (the embedding when tied). */
export class LmHead {
  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly acts: Activations,
    readonly weight: Tensor,
  ) {}

  /** Records lse and tokenLogp of the first N rows of `acts.lnf` at `acts.targets`. */
  forward(N: number): void {
    const { acts: a, backend } = this;
    const ops = backend.ops;
    if (a.vocabChunk > 0) {
      ops.lmHeadForward!({
        ...this.#fused(N),
        stats: a.headStats!,
        tokenLogp: this.#rows(a.tokenLogp, N, 1),
      });
      return;
    }
    const { vocabSize: V, hiddenSize: C } = this.config;
    this.#rowChunks(N, (R, logits, v) => {
      ops.matmul(logits, v(a.lnf, C), this.weight, R, V, C, { transB: true });
      ops.logitsForward(v(a.lse, 1), v(a.tokenLogp, 1), logits, v(a.targets, 1), R, V);
    });
  }

  /**
   * Records d(lnf) (N,C) into `acts.dLn` from `acts.rowGrad` = d(loss)/d(tokenLogp), and
   * dWeight (V,C) += dLogits^T @ lnf when given.
   */
  backward(N: number, dWeight: Tensor | undefined): void {
    const { acts: a, backend } = this;
    const ops = backend.ops;
    const { vocabSize: V, hiddenSize: C } = this.config;
    if (a.vocabChunk > 0) {
      ops.lmHeadBackward!({
        ...this.#fused(N),
        dHidden: this.#rows(a.dLn, N, C),
        ...(dWeight ? { dWeight } : {}),
        rowGrad: this.#rows(a.rowGrad, N, 1),
      });
      return;
    }
    const single = a.chunkRows >= N;
    this.#rowChunks(N, (R, logits, v) => {
      if (!single) ops.matmul(logits, v(a.lnf, C), this.weight, R, V, C, { transB: true });
      ops.logitsBackward(logits, v(a.lse, 1), v(a.targets, 1), v(a.rowGrad, 1), R, V);
      // d(lnf) (R,C) = dLogits (R,V) @ W (V,C); dW (V,C) += dLogits^T @ lnf (R,C).
      ops.matmul(v(a.dLn, C), logits, this.weight, R, C, V);
      if (dWeight) {
        ops.matmul(dWeight, logits, v(a.lnf, C), V, C, R, { transA: true, accumulate: true });
      }
    });
  }

  /** The first N rows of `t`, rows of `width` elements. */
  #rows(t: Tensor, N: number, width: number): Tensor {
    return t.size === N * width ? t : this.backend.view(t, 0, N * width);
  }

  /** The fused head's arguments common to its forward and backward. */
  #fused(N: number) {
    const { acts: a, config } = this;
    return {
      lse: this.#rows(a.lse, N, 1),
      scratch: a.logits,
      hidden: this.#rows(a.lnf, N, config.hiddenSize),
      weight: this.weight,
      targets: this.#rows(a.targets, N, 1),
      N,
      V: config.vocabSize,
      C: config.hiddenSize,
      vocabChunk: a.vocabChunk,
    };
  }

  /** Runs `fn` on each chunk of rows with a view helper `v(t, width)` of that chunk. */
  #rowChunks(
    N: number,
    fn: (R: number, logits: Tensor, v: (t: Tensor, width: number) => Tensor) => void,
  ): void {
    const step = this.acts.chunkRows;
    const V = this.config.vocabSize;
    for (let r0 = 0; r0 < N; r0 += step) {
      const R = Math.min(step, N - r0);
      const whole = r0 === 0 && R === N;
      const v = (t: Tensor, width: number) =>
        whole && t.size === N * width ? t : this.backend.view(t, r0 * width, R * width);
      const logits = R * V === this.acts.logits.size
        ? this.acts.logits
        : this.backend.view(this.acts.logits, 0, R * V);
      fn(R, logits, v);
    }
  }
}
