/**
 * Seeded initialisation of a fresh model as HF transformers initialises Llama: linear and
 * embedding weights from N(0, initializer_range), biases 0, RMSNorm weights 1.
 *
 * @module
 */

import { seededRandom } from "../data/sampler.ts";
import type { ParamLayout } from "./params.ts";

/** Standard normal draws (Box-Muller) from a uniform generator. */
export function normalSampler(uniform: () => number): () => number {
  return () => {
    const u1 = Math.max(uniform(), 1e-300);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * uniform());
  };
}

/**
 * Fresh weights for every parameter of `layout`, keyed by HF name.
 *
 * @param std standard deviation of weights (HF's `initializer_range`). @default 0.02
 */
export function initWeights(
  layout: ParamLayout,
  { seed = 0, std = 0.02 } = {},
): Map<string, { shape: number[]; data: Float32Array }> {
  const normal = normalSampler(seededRandom(seed));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const slot of layout.slots) {
    const data = new Float32Array(slot.size);
    if (slot.name.endsWith("norm.weight")) data.fill(1);
    else if (!slot.name.endsWith(".bias")) {
      for (let i = 0; i < data.length; i++) data[i] = std * normal();
    }
    out.set(slot.name, { shape: slot.shape, data });
  }
  return out;
}
