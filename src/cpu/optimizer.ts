/**
 * CPU reference of the optimizer ops: the global gradient norm (sum of squares in a fixed order),
 * gradient clipping as `torch.nn.utils.clip_grad_norm_`, and one step of AdamW, RMSprop or SGD
 * following PyTorch's single-tensor code paths. The WGSL kernels in `src/gpu/kernels/optimizer.ts`
 * are tested against these functions, and these against a PyTorch dump
 * (`tests/fixtures/optimizer_torch.json`).
 *
 * The hyper tensor layout is `packHyper`'s (src/backend/hyper.ts): 0 lr, 1 beta1, 2 beta2, 3 eps, 4 weightDecay,
 * 5 Adam step size, 6 sqrt(1 - beta2^step), 7 alpha, 8 momentum, 9 maxGradNorm, 10 step,
 * 11 1 - beta1, 12 1 - beta2, 13 1 - alpha (float64 differences rounded once).
 *
 * @module
 */

import { chunkSize, partialSlots } from "../backend/hyper.ts";
import type { FloatArray } from "./types.ts";

/**
 * total (1) = sum of g (n) squared. partial (≥ partialSlots(n)) receives the sum of each chunk of
 * {@link chunkSize} elements, then total the partials summed in order.
 */
export function sumSquares(total: FloatArray, partial: FloatArray, g: FloatArray, n: number): void {
  const slots = partialSlots(n);
  const chunk = chunkSize(n);
  let sum = 0;
  for (let w = 0; w < slots; w++) {
    let s = 0;
    const end = Math.min(n, (w + 1) * chunk);
    for (let i = w * chunk; i < end; i++) s += g[i] * g[i];
    partial[w] = s;
    sum += partial[w];
  }
  total[0] = sum;
}

/**
 * The factor `clip_grad_norm_` scales gradients by: `maxGradNorm / (sqrt(gradNormSq) + 1e-6)`
 * when clipping is on (maxGradNorm > 0) and that factor is below 1, else 1. `round` is applied
 * where PyTorch rounds to f32 (`Math.fround` to follow its f32 arithmetic).
 */
export function clipCoefficient(
  gradNormSq: number,
  maxGradNorm: number,
  round: (x: number) => number = (x) => x,
): number {
  if (!(maxGradNorm > 0)) return 1;
  const coef = round(maxGradNorm / round(round(Math.sqrt(gradNormSq)) + 1e-6));
  return coef < 1 ? coef : 1;
}

/**
 * One optimizer step over params, grads, state1, state2 (n). gradNormSq (1) is the squared global
 * gradient norm from {@link sumSquares}; hyper (16) as packed by `packHyper`.
 *
 * - `adamw` (torch.optim.AdamW): `p *= 1 - lr*wd; m = lerp(m, g, 1-beta1);
 *   v = beta2*v + (1-beta2)*g*g; p -= stepSize * m / (sqrt(v)/sqrt(1-beta2^t) + eps)`;
 *   state1 = m, state2 = v.
 * - `rmsprop` (torch.optim.RMSprop, not centered): `g += wd*p; v = alpha*v + (1-alpha)*g*g;
 *   avg = sqrt(v) + eps`; with momentum `buf = momentum*buf + g/avg; p -= lr*buf`, else
 *   `p -= lr*g/avg`; state1 = v, state2 = buf.
 * - `sgd` (torch.optim.SGD, dampening 0, not Nesterov): `g += wd*p`; with momentum the buffer is
 *   g at step 1 and `momentum*buf + g` after, `p -= lr*buf`; else `p -= lr*g`; state1 = buf.
 *
 * The gradient is first scaled by {@link clipCoefficient}; the grads array is not modified.
 */
export function optimizerStep(
  kind: "adamw" | "rmsprop" | "sgd",
  params: FloatArray,
  grads: FloatArray,
  state1: FloatArray,
  state2: FloatArray,
  gradNormSq: FloatArray,
  hyper: FloatArray,
  n: number,
): void {
  const lr = hyper[0], beta2 = hyper[2], eps = hyper[3], wd = hyper[4];
  const stepSize = hyper[5], biasCorrection2Sqrt = hyper[6];
  const alpha = hyper[7], momentum = hyper[8], step = hyper[10];
  // In f32 mode, round wherever PyTorch materialises an f32 tensor (the clipped and decayed
  // gradient, sqrt, denominators, moments), so ill-conditioned cases (g + wd*p cancelling, tiny
  // v next to eps) follow PyTorch and the WGSL kernels rather than float64.
  const r = params instanceof Float32Array ? Math.fround : (x: number) => x;
  const coef = clipCoefficient(gradNormSq[0], hyper[9], r);
  switch (kind) {
    case "adamw": {
      const decay = r(1 - lr * wd);
      for (let i = 0; i < n; i++) {
        const g = r(grads[i] * coef);
        const p = r(params[i] * decay);
        const m = r(state1[i] + (g - state1[i]) * hyper[11]);
        const v = r(r(state2[i] * beta2) + hyper[12] * g * g);
        state1[i] = m;
        state2[i] = v;
        const denom = r(r(r(Math.sqrt(v)) / biasCorrection2Sqrt) + eps);
        params[i] = p - stepSize * m / denom;
      }
      return;
    }
    case "rmsprop": {
      for (let i = 0; i < n; i++) {
        const p = params[i];
        const g = r(r(grads[i] * coef) + wd * p);
        const v = r(r(alpha * state1[i]) + hyper[13] * g * g);
        state1[i] = v;
        const avg = r(r(Math.sqrt(v)) + eps);
        if (momentum !== 0) {
          const buf = r(r(momentum * state2[i]) + g / avg);
          state2[i] = buf;
          params[i] = p - lr * buf;
        } else {
          params[i] = p - lr * g / avg;
        }
      }
      return;
    }
    case "sgd": {
      for (let i = 0; i < n; i++) {
        const p = params[i];
        const g = r(r(grads[i] * coef) + wd * p);
        if (momentum !== 0) {
          // torch initialises the momentum buffer to the first gradient, not to zero.
          const buf = step <= 1 ? g : r(r(momentum * state1[i]) + g);
          state1[i] = buf;
          params[i] = p - lr * buf;
        } else {
          params[i] = p - lr * g;
        }
      }
      return;
    }
    default:
      throw new Error(`optimizerStep: unknown optimizer "${kind}"; use adamw, rmsprop or sgd`);
  }
}
