/**
 * The hardware layouts of the matmul (src/gpu/kernels/matmul.ts holds the op's contract and the
 * software layout): out (M,N) (+)= op(a) @ op(b) [+ bias], with the same bindings and uniforms.
 *
 *   out: (M, N)
 *   a:   (M, K), or (K, M) stored when `transA`
 *   b:   (K, N), or (N, K) stored when `transB`
 *   bias: (N)
 *
 * Design (for GPUs, where workgroup memory is on-chip and a barrier is cheap): a workgroup owns a
 * BM x BN output tile and walks k in tiles of BK. Each K-tile of both operands is loaded from the
 * storage buffers once per workgroup (four consecutive elements per load along each operand's
 * contiguous axis, one vec4 load where that axis is a multiple of 4) and stored k-major into
 * workgroup memory, so that every invocation then reads its TM rows of `a` and TN columns of `b`
 * as vec4s and does TM * TN multiply-adds per k step from registers. Two workgroup buffers
 * alternate: the next K-tile is loaded into registers before the current one is multiplied and
 * stored into the other buffer after it, so one barrier per tile suffices and the loads overlap
 * the arithmetic. An invocation's rows (columns) are four-row groups strided by 4 * (BM / TM),
 * so neighbouring invocations read neighbouring vec4s of workgroup memory and store neighbouring
 * vec4s of `out`.
 *
 * Edges: loads outside (M, K) or (K, N) read 0 and are never summed: the last K-tile's loop runs
 * to K exactly, and rows or columns beyond M or N are computed and never stored. No padding
 * enters a sum.
 *
 * Determinism: every output element is the sum over k in ascending order, one multiply-add per
 * step written `acc += a * b` as in the software layout (so a compiler that fuses one fuses the
 * other), then `+ bias`, then `out +` when accumulating. No atomics, no split-k: every tiling
 * gives the bits of every other and of the software layout on one adapter (tests/gpu/
 * matmul_tiled_test.ts checks it on llvmpipe).
 *
 * @module
 */

import type { MatmulVariant } from "./matmul.ts";
import { emitEpilogue, emitPrologue, variantTag } from "./matmul_epilogue.ts";

/** Shape of one workgroup-tiled matmul candidate. */
export interface TiledTiling {
  /** Output rows (bm) and columns (bn) per workgroup; multiples of 4 * tm and 4 * tn. */
  bm: number;
  bn: number;
  /** k per workgroup-memory tile (a multiple of 4). */
  bk: number;
  /** Output rows and columns per invocation (multiples of 4). */
  tm: number;
  tn: number;
}

/** The candidates the tuner times; {@link tiledName} names each. */
export const TILED_CANDIDATES: readonly TiledTiling[] = [
  { bm: 64, bn: 64, bk: 8, tm: 4, tn: 4 },
  { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  { bm: 64, bn: 64, bk: 16, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
];

/** A candidate's name, e.g. `tiled128x128x16_8x8`. */
export function tiledName(t: TiledTiling): string {
  return `tiled${t.bm}x${t.bn}x${t.bk}_${t.tm}x${t.tn}`;
}

/** Bytes of workgroup memory a tiling holds (two K-tiles of both operands). */
export function tiledWorkgroupBytes(t: TiledTiling): number {
  return 2 * t.bk * (t.bm + t.bn) * 4;
}

/** Invocations per workgroup of a tiling. */
export function tiledInvocations(t: TiledTiling): number {
  return (t.bm / t.tm) * (t.bn / t.tn);
}

/** Whether the device can run a tiling (workgroup memory, invocations, workgroup size). */
export function tiledFits(t: TiledTiling, limits: GPUSupportedLimits): boolean {
  return tiledWorkgroupBytes(t) <= limits.maxComputeWorkgroupStorageSize &&
    tiledInvocations(t) <= limits.maxComputeInvocationsPerWorkgroup &&
    t.bn / t.tn <= limits.maxComputeWorkgroupSizeX &&
    t.bm / t.tm <= limits.maxComputeWorkgroupSizeY;
}

/** Pipeline-cache name of one variant in one tiling (one name per distinct WGSL text). */
export function tiledKernelName(v: MatmulVariant, t: TiledTiling): string {
  return variantTag(v) + tiledName(t);
}

/** Workgroup counts of a dispatch of `t` over out (m, n). */
export function tiledGroups(t: TiledTiling, m: number, n: number): [number, number] {
  return [Math.ceil(n / t.bn), Math.ceil(m / t.bm)];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const COMP = ["x", "y", "z", "w"];

/**
 * WGSL of one variant in one tiling. Bindings as in the software layout: 1 out (M,N), 2 a, 3 b,
 * 4 bias (N) if any; uniforms M, N, K, accumulate (0 or 1). Dispatch {@link tiledGroups}.
 */
export function tiledMatmulWgsl(v: MatmulVariant, t: TiledTiling): string {
  const { bm, bn, bk, tm, tn } = t;
  const tx = bn / tn, ty = bm / tm, threads = tx * ty;
  if (bm % (4 * ty) || bn % (4 * tx) || bk % 4 || tm % 4 || tn % 4) {
    throw new Error(`matmul: tiling ${tiledName(t)} is not made of whole vec4 groups`);
  }
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  /**
   * Loads of one operand's K-tile into registers (`load`) and their stores into workgroup memory
   * (`store`), over the same units of four elements along the operand's contiguous axis.
   */
  const operand = (name: "a" | "b") => {
    const isA = name === "a";
    const buf = isA ? "aBuf" : "bBuf";
    const vec = isA ? v.vecA : v.vecB;
    const X = isA ? "M" : "N"; // the operand's non-k extent
    const BX = isA ? bm : bn;
    const x0 = isA ? "m0" : "n0";
    const shared = isA ? "As" : "Bs";
    // a (K, M) when transA and b (K, N) without transB are contiguous along x; else along k.
    const xContig = isA ? v.transA : !v.transB;
    const units = bk * BX / 4;
    const slots = Math.ceil(units / threads);
    const load: string[] = [], store: string[] = [];
    for (const l of range(slots)) {
      const u = `(${l * threads}u + tid)`;
      const guard = (l + 1) * threads > units ? `${u} < ${units}u` : "";
      const reg = `p${name}${l}`;
      let kk: string, x: string, idx: (e: number) => string, inside: (e: number) => string;
      if (xContig) {
        kk = `(${u} / ${BX / 4}u)`;
        x = `((${u} % ${BX / 4}u) * 4u)`;
        idx = (e) => `(k0 + ${kk}) * ${X} + ${x0} + ${x} + ${e}u`;
        inside = (e) => `k0 + ${kk} < K && ${x0} + ${x} + ${e}u < ${X}`;
      } else {
        x = `(${u} / ${bk / 4}u)`;
        kk = `((${u} % ${bk / 4}u) * 4u)`;
        idx = (e) => `(${x0} + ${x}) * K + k0 + ${kk} + ${e}u`;
        inside = (e) => `${x0} + ${x} < ${X} && k0 + ${kk} + ${e}u < K`;
      }
      const body: string[] = [];
      if (vec) {
        // A vec4 group lies wholly inside or wholly outside: its axis is a multiple of 4.
        body.push(`if (${inside(0)}) { ${reg} = ${buf}[(${idx(0)}) >> 2u]; }`);
      } else {
        for (const e of range(4)) {
          body.push(`if (${inside(e)}) { ${reg}.${COMP[e]} = ${buf}[${idx(e)}]; }`);
        }
      }
      load.push(`${reg} = vec4<f32>(0.0);`);
      load.push(guard ? `if (${guard}) { ${body.join(" ")} }` : body.join("\n    "));
      const st: string[] = [];
      if (xContig) {
        st.push(`${shared}[dst + ${kk} * ${BX / 4}u + ${x} / 4u] = ${reg};`);
      } else {
        for (const e of range(4)) {
          st.push(
            `${shared}[dst + (${kk} + ${e}u) * ${BX / 4}u + ${x} / 4u][${x} & 3u] = ` +
              `${reg}.${COMP[e]};`,
          );
        }
      }
      store.push(guard ? `if (${guard}) { ${st.join(" ")} }` : st.join("\n    "));
    }
    return { slots, load, store };
  };
  const A = operand("a"), B = operand("b");
  const tileA = bk * bm / 4, tileB = bk * bn / 4;

  emitPrologue(emit, v, tiledName(t));
  emit(`var<workgroup> As: array<vec4<f32>, ${2 * tileA}>;`);
  emit(`var<workgroup> Bs: array<vec4<f32>, ${2 * tileB}>;`);
  emit(`@compute @workgroup_size(${tx}, ${ty})`);
  emit(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`,
  );
  emit(`  let M = u.M; let N = u.N; let K = u.K;`);
  emit(`  let tid = lid.y * ${tx}u + lid.x;`);
  emit(`  let m0 = wid.y * ${bm}u; let n0 = wid.x * ${bn}u;`);
  for (const l of range(A.slots)) emit(`  var pa${l} = vec4<f32>(0.0);`);
  for (const l of range(B.slots)) emit(`  var pb${l} = vec4<f32>(0.0);`);
  for (const r of range(tm)) {
    for (const c4 of range(tn / 4)) emit(`  var acc${r}_${c4} = vec4<f32>(0.0);`);
  }
  emit(`  let tiles = (K + ${bk - 1}u) / ${bk}u;`);
  const loadTile = (indent: string) => {
    for (const s of [...A.load, ...B.load]) emit(indent + s);
  };
  const storeTile = (indent: string, dstA: string, dstB: string) => {
    emit(`${indent}{ let dst = ${dstA};`);
    for (const s of A.store) emit(`${indent}  ${s}`);
    emit(`${indent}}`);
    emit(`${indent}{ let dst = ${dstB};`);
    for (const s of B.store) emit(`${indent}  ${s}`);
    emit(`${indent}}`);
  };
  emit(`  if (tiles > 0u) {`);
  emit(`    let k0 = 0u;`);
  loadTile("    ");
  storeTile("    ", "0u", "0u");
  emit(`  }`);
  emit(`  workgroupBarrier();`);
  // One k step from workgroup memory: TM/4 + TN/4 vec4 reads, TM * TN/4 vec4 multiply-adds.
  const step = (indent: string) => {
    for (const i4 of range(tm / 4)) {
      emit(`${indent}let a${i4} = As[curA + kk * ${bm / 4}u + ${i4 * ty}u + lid.y];`);
    }
    for (const j4 of range(tn / 4)) {
      emit(`${indent}let b${j4} = Bs[curB + kk * ${bn / 4}u + ${j4 * tx}u + lid.x];`);
    }
    for (const r of range(tm)) {
      for (const c4 of range(tn / 4)) {
        emit(`${indent}acc${r}_${c4} += a${r >> 2}.${COMP[r & 3]} * b${c4};`);
      }
    }
  };
  emit(`  for (var tile = 0u; tile < tiles; tile += 1u) {`);
  emit(`    let curA = (tile & 1u) * ${tileA}u; let curB = (tile & 1u) * ${tileB}u;`);
  emit(`    let more = tile + 1u < tiles;`);
  emit(`    if (more) {`);
  emit(`      let k0 = (tile + 1u) * ${bk}u;`);
  loadTile("      ");
  emit(`    }`);
  emit(`    let depth = min(${bk}u, K - tile * ${bk}u);`);
  emit(`    if (depth == ${bk}u) {`);
  emit(`      for (var kk = 0u; kk < ${bk}u; kk += 1u) {`);
  step("        ");
  emit(`      }`);
  emit(`    } else {`);
  emit(`      for (var kk = 0u; kk < depth; kk += 1u) {`);
  step("        ");
  emit(`      }`);
  emit(`    }`);
  emit(`    if (more) {`);
  storeTile("      ", `${tileA}u - curA`, `${tileB}u - curB`);
  emit(`    }`);
  emit(`    workgroupBarrier();`);
  emit(`  }`);
  // Epilogue as in the software layout: + bias, then out + result, stored inside (M, N) only.
  emitEpilogue(emit, {
    rows: tm,
    colGroups: tn / 4,
    row: (r) => `m0 + ${(r >> 2) * 4 * ty}u + lid.y * 4u + ${r & 3}u`,
    col: (c4) => `n0 + ${c4 * 4 * tx}u + lid.x * 4u`,
    vecOut: v.vecOut,
    bias: v.bias,
  });
  emit(`}`);
  return lines.join("\n") + "\n";
}
