/**
 * The kernel families src/gpu/tuner.ts times, each with its shape keys and one recorder per
 * candidate: the tiled matmul (`NT 1024x576x1536`: transposes, then m x n x k), the flash
 * attention tiles (`attention 8x256x9x3x64`: B x T x H x Hkv x D, forward and backward), and the
 * fused LM head's vocabulary chunk (`lm_head 2048x49152x576 chunk<=8192`: rows x vocabulary x
 * hidden, and the widest chunk the model's logits budget allows; forward and backward). Inputs are
 * the zeros a new buffer holds: no kernel's time depends on its values. Every family's candidates
 * give the same bits (tests/gpu/attention_test.ts, lm_head_test.ts, matmul_tiled_test.ts).
 *
 * @module
 */

import type { TunerFamily } from "./tuner.ts";
import { matmul } from "./kernels/matmul.ts";
import { candidatesFor, matmulCandidateName, parseShapeKey } from "./matmul_policy.ts";
import { flashCandidates, flashName, parseAttentionKey } from "./kernels/attention.ts";
import { attentionBackwardFlash, attentionForwardFlash } from "./kernels/attention_flash.ts";
import {
  lmHeadBackward,
  lmHeadCandidates,
  lmHeadForward,
  lmHeadScratch,
  parseLmHeadKey,
} from "./lm_head.ts";

const owns = (parse: (key: string) => unknown) => (key: string) => {
  try {
    parse(key);
    return true;
  } catch {
    return false;
  }
};

/** The hardware matmul: every candidate the device can run (tiled, and subgroup where offered). */
export const MATMUL_FAMILY: TunerFamily = {
  name: "matmul",
  example: "NT 1024x576x1536",
  owns: owns(parseShapeKey),
  prepare(scratch, key) {
    const { m, n, k, transA, transB } = parseShapeKey(key);
    const a = scratch.alloc("activations", m * k), b = scratch.alloc("activations", k * n);
    const out = scratch.alloc("activations", m * n);
    return new Map(
      candidatesFor(scratch).map((t) => [
        matmulCandidateName(t),
        () => matmul(scratch, out, a, b, m, n, k, { transA, transB }, t),
      ]),
    );
  },
};

/** The flash attention tiles: the forward and the backward of one (B, T, H, Hkv, D) shape. */
export const ATTENTION_FAMILY: TunerFamily = {
  name: "attention",
  example: "attention 8x256x9x3x64",
  owns: owns(parseAttentionKey),
  prepare(scratch, key) {
    const shape = parseAttentionKey(key);
    const [B, T, H, Hkv, D] = shape;
    const f32 = (n: number) => scratch.alloc("activations", n);
    const q = f32(B * T * H * D), k = f32(B * T * Hkv * D), v = f32(B * T * Hkv * D);
    const out = f32(B * T * H * D), stats = f32(B * H * T * 2), dOut = f32(B * T * H * D);
    const grads = {
      dq: f32(B * T * H * D),
      dk: f32(k.size),
      dv: f32(v.size),
      rowDot: f32(B * H * T),
    };
    return new Map(
      flashCandidates(scratch).map((t) => [flashName(t), () => {
        attentionForwardFlash(scratch, out, stats, q, k, v, shape, t);
        attentionBackwardFlash(scratch, grads, { dOut, q, k, v, out, stats }, shape, t);
      }]),
    );
  },
};

/** The fused LM head's chunk, timed over at most four chunks' worth of the vocabulary. */
export const LM_HEAD_FAMILY: TunerFamily = {
  name: "lm_head",
  example: "lm_head 2048x49152x576 chunk<=8192",
  owns: owns(parseLmHeadKey),
  prepare(scratch, key) {
    const { N, V: fullV, C, widest } = parseLmHeadKey(key);
    const V = Math.min(fullV, 4 * widest);
    const chunks = lmHeadCandidates(scratch, N, C, widest);
    const f32 = (n: number) => scratch.alloc("activations", n);
    const lse = f32(N), tokenLogp = f32(N), stats = f32(N * 3), rowGrad = f32(N);
    const scratchSize = Math.max(...chunks.map((c) => lmHeadScratch(N, c).trainable));
    const common = {
      scratch: f32(scratchSize),
      hidden: f32(N * C),
      weight: f32(V * C),
      targets: scratch.alloc("inputs", N, "i32"),
      lse,
      N,
      V,
      C,
    };
    const dHidden = f32(N * C), dWeight = f32(V * C);
    return new Map(chunks.map((vocabChunk) => [String(vocabChunk), () => {
      lmHeadForward(scratch, { ...common, vocabChunk, tokenLogp, stats });
      lmHeadBackward(scratch, { ...common, vocabChunk, dHidden, dWeight, rowGrad });
    }]));
  },
};

/** Every tuned family. */
export const TUNED_FAMILIES: readonly TunerFamily[] = [
  MATMUL_FAMILY,
  ATTENTION_FAMILY,
  LM_HEAD_FAMILY,
];
