/**
 * The subgroup layout of the matmul, a tuner candidate where the device has the `subgroups`
 * feature (contract and bindings as kernels/matmul.ts): out (M,N) (+)= op(a) @ op(b) [+ bias].
 *
 * Design: a workgroup of 64 invocations owns TM output rows and 256 columns, four consecutive
 * columns per invocation (one vec4 accumulator per row). Its rows are the same for every
 * invocation, so a subgroup shares them: k advances in steps of the subgroup size S, lane l loads
 * the TM values a(row, k0 + l) (neighbouring lanes read neighbouring k, one load per subgroup
 * instead of one per lane), and each k of the step reaches every lane by `subgroupShuffle` from
 * lane k - k0, while each lane loads its four b(k, j..j+3) itself. No workgroup memory, no
 * barrier.
 *
 * Determinism: every output element is the sum over k in ascending order, one multiply-add per
 * step written `acc += a * b` on vec4 accumulators as in the other layouts, then `+ bias`, then
 * `out +` (the shared epilogue): the same bits as every other candidate (tests/web/
 * matmul_subgroup_chromium_test.ts checks it in Chromium, whose SwiftShader has subgroups). The
 * loops' bounds (K, the subgroup size) are uniform and no lane leaves them early, so every
 * shuffle runs in uniform control flow; loads outside (M, K) or (K, N) read 0 and the k loop
 * stops at K, so no padding enters a sum.
 *
 * @module
 */

import type { MatmulVariant } from "./matmul.ts";
import { emitEpilogue, emitPrologue, variantTag } from "./matmul_epilogue.ts";

/** One subgroup candidate: output rows per workgroup. */
export interface SubgroupTiling {
  /** Marks the subgroup layout. */
  subgroup: true;
  /** Output rows per workgroup (and per invocation). */
  tm: number;
}

/** Invocations per workgroup; each holds four output columns. */
export const SUBGROUP_THREADS = 64;

/** The subgroup candidates the tuner times where the device has `subgroups`. */
export const SUBGROUP_CANDIDATES: readonly SubgroupTiling[] = [
  { subgroup: true, tm: 4 },
  { subgroup: true, tm: 8 },
];

/** A candidate's name, e.g. `subgroup_8`. */
export function subgroupName(t: SubgroupTiling): string {
  return `subgroup_${t.tm}`;
}

/** Pipeline-cache name of one variant in one subgroup tiling. */
export function subgroupKernelName(v: MatmulVariant, t: SubgroupTiling): string {
  return variantTag(v) + subgroupName(t);
}

/** Workgroup counts of a dispatch of `t` over out (m, n). */
export function subgroupGroups(t: SubgroupTiling, m: number, n: number): [number, number] {
  return [Math.ceil(n / (4 * SUBGROUP_THREADS)), Math.ceil(m / t.tm)];
}

const COMP = ["x", "y", "z", "w"];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of one variant in one subgroup tiling; dispatch {@link subgroupGroups}. */
export function subgroupMatmulWgsl(v: MatmulVariant, t: SubgroupTiling): string {
  const { tm } = t;
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  const at = (buf: string, vec: boolean, idx: string) =>
    vec ? `${buf}[(${idx}) >> 2u][(${idx}) & 3u]` : `${buf}[${idx}]`;
  // a(i, k): (M, K) row-major, or (K, M) when transA; b(k, j): (K, N), or (N, K) when transB.
  const aIdx = (i: string, k: string) => (v.transA ? `${k} * M + ${i}` : `${i} * K + ${k}`);
  const bIdx = (k: string, j: string) => (v.transB ? `${j} * K + ${k}` : `${k} * N + ${j}`);

  emit("enable subgroups;");
  emitPrologue(emit, v, subgroupName(t));
  emit(`@compute @workgroup_size(${SUBGROUP_THREADS})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>,`);
  emit(`        @builtin(local_invocation_index) lid: u32,`);
  emit(`        @builtin(subgroup_invocation_id) lane: u32,`);
  emit(`        @builtin(subgroup_size) S: u32) {`);
  emit(`  let M = u.M; let N = u.N; let K = u.K;`);
  emit(`  let m0 = wid.y * ${tm}u;`);
  emit(`  let j = wid.x * ${4 * SUBGROUP_THREADS}u + lid * 4u;`);
  for (const r of range(tm)) emit(`  var acc${r}_0 = vec4<f32>(0.0);`);
  emit(`  for (var k0 = 0u; k0 < K; k0 += S) {`);
  emit(`    let kl = k0 + lane;`);
  for (const r of range(tm)) {
    emit(`    var a${r} = 0.0;`);
    emit(
      `    if (m0 + ${r}u < M && kl < K) { a${r} = ${
        at("aBuf", v.vecA, aIdx(`(m0 + ${r}u)`, "kl"))
      }; }`,
    );
  }
  emit(`    let depth = min(S, K - k0);`);
  emit(`    for (var kk = 0u; kk < depth; kk += 1u) {`);
  emit(`      let k = k0 + kk;`);
  if (v.vecB && !v.transB) {
    emit(`      var b = vec4<f32>(0.0);`);
    emit(`      if (j < N) { b = bBuf[(${bIdx("k", "j")}) >> 2u]; }`);
  } else {
    emit(`      var b = vec4<f32>(0.0);`);
    for (const e of range(4)) {
      const jj = `(j + ${e}u)`;
      emit(`      if (${jj} < N) { b.${COMP[e]} = ${at("bBuf", v.vecB, bIdx("k", jj))}; }`);
    }
  }
  for (const r of range(tm)) emit(`      acc${r}_0 += subgroupShuffle(a${r}, kk) * b;`);
  emit(`    }`);
  emit(`  }`);
  emitEpilogue(emit, {
    rows: tm,
    colGroups: 1,
    row: (r) => `m0 + ${r}u`,
    col: () => `j`,
    vecOut: v.vecOut,
    bias: v.bias,
  });
  emit(`}`);
  return lines.join("\n") + "\n";
}
