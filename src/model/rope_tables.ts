/**
 * Rotary-embedding tables as HF transformers' LlamaRotaryEmbedding computes them (default rope
 * type, attention_scaling 1), in float32 at every step so that the angles match PyTorch's:
 *
 *   inv_freq[i] = 1 / theta ** (2i / D)      (arange(0, D, 2).float() / D, f32 pow, f32 divide)
 *   freqs[t, i] = t * inv_freq[i]            (f32 product)
 *   cos, sin    = cos(freqs), sin(freqs)     (rounded to f32)
 *
 * HF concatenates freqs with itself to length D; the two halves are equal, so only (T, D/2) is
 * kept and the rope op reads entry i for both x[i] and x[i + D/2].
 *
 * @module
 */

const f32 = Math.fround;

/**
 * cos and sin tables, each (T, D/2) row-major, for positions 0..T-1 of a head of size D.
 *
 * @example
 * ```ts
 * const { cos, sin } = ropeTables(512, 64, 10000); // SmolLM-135M: head_dim 64, rope_theta 1e4
 * ```
 * @throws {RangeError} when D is not a positive even number or T is negative.
 */
export function ropeTables(
  T: number,
  D: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  if (!Number.isInteger(D) || D <= 0 || D % 2 !== 0) {
    throw new RangeError(`rope head dimension must be a positive even integer, got ${D}`);
  }
  if (!Number.isInteger(T) || T < 0) {
    throw new RangeError(`rope table length must be a non-negative integer, got ${T}`);
  }
  const half = D / 2;
  const base = f32(theta);
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = f32(f32(2 * i) / f32(D));
    invFreq[i] = f32(1 / f32(Math.pow(base, exponent)));
  }
  const cos = new Float32Array(T * half);
  const sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(f32(t) * invFreq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
