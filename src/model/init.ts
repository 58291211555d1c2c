/**
 * Seeded initialisation of a fresh model as HF transformers initialises Llama: linear and
 * embedding weights from N(0, initializer_range), biases 0, RMSNorm weights 1.
 *
 * @module
 */

import type { ParamLayout } from "./params.ts";

/** A seeded generator of uniform floats in [0, 1) (mulberry32): fast, small, reproducible. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  const normal = normalSampler(mulberry32(seed));
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
