/**
 * Drives the fused LM head of kernels/lm_head.ts over vocabulary chunks: the plan (columns per
 * chunk and the scratch they need), the forward (per chunk: group statistics, then their fold into
 * the running per-row statistics) and the backward (per chunk: dLogits from recomputed logits into
 * an (N, vocabChunk) scratch, dHidden continued over the chunk, dWeight's rows of the chunk by the
 * matmul of src/gpu/split.ts). Nothing holds the (N, V) logits.
 *
 * The chunk size. Every candidate gives the same bits (kernels/lm_head.ts), so it is chosen for
 * memory and speed only. The forward needs no scratch beyond its (N, G, 3) group statistics, and
 * the backward's re-reading of dHidden once per chunk is small beside its three N·V·C products;
 * what the chunk buys is work per dispatch: dWeight's product of a chunk is (vocabChunk, C) over k
 * = N, and a few chunk columns leave most of a GPU idle. So the built-in choice is the widest
 * candidate whose (N, vocabChunk) scratch fits the model's `logitsBudget` (the elements of logits
 * the unfused head may hold at once; 16 MiB by default), one binding, and one binding of weight
 * rows, and never wider than the vocabulary rounded up to a group; with a tuner the plan takes
 * the fastest of that and every narrower candidate, timed on the adapter (src/gpu/tuner.ts).
 *
 * @module
 */

import type { LmHeadBackwardArgs, LmHeadForwardArgs, LmHeadPlan, Tensor } from "../backend/mod.ts";
import type { GpuContext, GpuTensor } from "./context.ts";
import * as kernels from "./kernels/lm_head.ts";
import * as backward from "./kernels/lm_head_backward.ts";
import * as split from "./split.ts";

/** Vocabulary columns per chunk that the plan chooses among (multiples of GROUP_COLS). */
export const LM_HEAD_CHUNKS: readonly number[] = [256, 512, 1024, 2048, 4096, 8192, 16384];

const roundUp = (x: number, to: number) => Math.ceil(x / to) * to;

/** Scratch elements for N rows and chunks of vocabChunk columns. */
export function lmHeadScratch(N: number, vocabChunk: number): LmHeadPlan["scratch"] {
  const frozen = N * 3 * Math.ceil(vocabChunk / kernels.GROUP_COLS);
  return { trainable: Math.max(frozen, N * vocabChunk), frozen };
}

/** The key of an LM head shape in the tuner's table, e.g. `lm_head 2048x49152x576 chunk<=8192`. */
export function lmHeadKey(N: number, V: number, C: number, widest: number): string {
  return `lm_head ${N}x${V}x${C} chunk<=${widest}`;
}

/** Parses {@link lmHeadKey}'s key back into its parts. */
export function parseLmHeadKey(key: string) {
  const match = /^lm_head (\d+)x(\d+)x(\d+) chunk<=(\d+)$/.exec(key);
  if (!match || +match[4] % kernels.GROUP_COLS !== 0) {
    throw new Error(`bad lm head shape key "${key}"`);
  }
  const [N, V, C, widest] = match.slice(1).map(Number);
  return { N, V, C, widest };
}

/**
 * The chunks a tuner may choose among: every candidate that binds for N rows, narrower than
 * `widest` (the plan's memory-bound choice), and `widest` itself.
 */
export function lmHeadCandidates(ctx: GpuContext, N: number, C: number, widest: number): number[] {
  const max = ctx.maxBindingElements;
  const fits = LM_HEAD_CHUNKS.filter((c) => c < widest && N * c <= max && c * C <= max);
  return [...fits, widest];
}

/** The built-in chunk (the widest within budget), or undefined where the head does not apply. */
function widestChunk(ctx: GpuContext, N: number, V: number, C: number, logitsBudget: number) {
  const max = ctx.maxBindingElements;
  if (N < 1 || N * C > max) return undefined;
  const fits = LM_HEAD_CHUNKS.filter((c) => N * c <= max && c * C <= max);
  if (fits.length === 0) return undefined;
  const within = fits.filter((c) => N * c <= logitsBudget);
  return Math.min(within.at(-1) ?? fits[0], roundUp(V, kernels.GROUP_COLS));
}

/** The built-in chunk, the tuner's candidates and its key (undefined: one candidate only). */
function chunkChoice(ctx: GpuContext, N: number, V: number, C: number, logitsBudget: number) {
  const widest = widestChunk(ctx, N, V, C, logitsBudget);
  if (widest === undefined) return undefined;
  const candidates = lmHeadCandidates(ctx, N, C, widest);
  const key = candidates.length > 1 ? lmHeadKey(N, V, C, widest) : undefined;
  return { widest, candidates, key };
}

/** The tuner's key of a model's LM head, or undefined where there is nothing to choose. */
export function lmHeadTuningKey(
  ctx: GpuContext,
  N: number,
  V: number,
  C: number,
  logitsBudget: number,
): string | undefined {
  return chunkChoice(ctx, N, V, C, logitsBudget)?.key;
}

/**
 * The plan for up to N rows, or undefined where the fused head does not apply: the hidden state
 * (N, C) must fit one binding, as must an (N, 256) scratch and 256 weight rows. The chunk is the
 * tuner's choice among {@link lmHeadCandidates} where it has one, else the widest within budget.
 */
export function lmHeadPlan(
  ctx: GpuContext,
  N: number,
  V: number,
  C: number,
  logitsBudget: number,
): LmHeadPlan | undefined {
  const choice = chunkChoice(ctx, N, V, C, logitsBudget);
  if (!choice) return undefined;
  const { widest, candidates, key } = choice;
  const tuned = key === undefined ? NaN : Number(ctx.tuner?.choose(ctx, key));
  const vocabChunk = candidates.includes(tuned) ? tuned : widest;
  return { vocabChunk, scratch: lmHeadScratch(N, vocabChunk) };
}

function checkChunk(vocabChunk: number): void {
  if (!(vocabChunk > 0) || vocabChunk % kernels.GROUP_COLS !== 0) {
    throw new Error(
      `lm head: vocabChunk ${vocabChunk} is not a positive multiple of ${kernels.GROUP_COLS}`,
    );
  }
}

/** Runs fn(v0, Vc, first, last) over the chunks of V columns. */
function eachChunk(
  V: number,
  vocabChunk: number,
  fn: (v0: number, Vc: number, first: boolean, last: boolean) => void,
): void {
  checkChunk(vocabChunk);
  for (let v0 = 0; v0 < V; v0 += vocabChunk) {
    const Vc = Math.min(vocabChunk, V - v0);
    fn(v0, Vc, v0 === 0, v0 + Vc >= V);
  }
}

const view = (ctx: GpuContext, t: Tensor, offset: number, size: number) =>
  size === t.size && offset === 0 ? t : ctx.view(t as GpuTensor, offset, size);

/** Records the fused forward: lse and tokenLogp (N) of hidden @ weight^T at targets. */
export function lmHeadForward(ctx: GpuContext, a: LmHeadForwardArgs): void {
  const { N, V, C, vocabChunk } = a;
  eachChunk(V, vocabChunk, (v0, Vc, first, last) => {
    const G = Math.ceil(Vc / kernels.GROUP_COLS);
    const partial = view(ctx, a.scratch, 0, N * G * 3);
    const weight = view(ctx, a.weight, v0 * C, Vc * C);
    kernels.lmHeadStats(ctx, partial, a.hidden, weight, a.targets, { N, Vc, C, v0 });
    kernels.lmHeadMerge(ctx, a, partial, a.targets, { N, Vc, v0, first, last });
  });
}

/** Records the fused backward: dHidden = dLogits @ weight, dWeight += dLogits^T @ hidden. */
export function lmHeadBackward(ctx: GpuContext, a: LmHeadBackwardArgs): void {
  const { N, V, C, vocabChunk } = a;
  eachChunk(V, vocabChunk, (v0, Vc, first) => {
    const dLogits = view(ctx, a.scratch, 0, N * Vc);
    const weight = view(ctx, a.weight, v0 * C, Vc * C);
    backward.lmHeadGrad(ctx, dLogits, a.hidden, weight, a, { N, Vc, C, v0 });
    backward.lmHeadDHidden(ctx, a.dHidden, dLogits, weight, { N, Vc, C, first });
    if (a.dWeight) {
      // dWeight rows v0..v0+Vc (Vc, C) += dLogits^T (N, Vc)^T @ hidden (N, C).
      split.matmul(ctx, view(ctx, a.dWeight, v0 * C, Vc * C), dLogits, a.hidden, Vc, C, N, {
        transA: true,
        accumulate: true,
      });
    }
  });
}

/** Every variant's WGSL by pipeline name, for the shader catalog. */
export function lmHeadKernels(): Record<string, string> {
  const out: Record<string, string> = { lm_head_merge: kernels.LM_HEAD_MERGE_WGSL };
  for (const dtype of ["f32", "bf16", "f16"] as const) {
    for (const vec of [false, true]) {
      const v = { vec, dtype, f16Mode: "unpack" as const };
      out[`lm_head_stats${kernels.tag(v)}`] = kernels.lmHeadStatsWgsl(v);
      out[`lm_head_grad${kernels.tag(v)}`] = backward.lmHeadGradWgsl(v);
    }
    const v = { vec: false, dtype, f16Mode: "unpack" as const };
    out[`lm_head_dhidden${kernels.tag(v)}`] = backward.lmHeadDHiddenWgsl(v);
  }
  return out;
}
