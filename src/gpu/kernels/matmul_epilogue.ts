/**
 * What the matmul layouts share: the f32 prologue (header comment, uniforms and bindings) and the
 * variant's name tag of the hardware layouts (kernels/matmul_tiled.ts, matmul_subgroup.ts), and
 * the store of a register block, shared by the software (kernels/matmul.ts) and hardware layouts: for each accumulator row `acc{r}_{c4}` (vec4 of four output
 * columns), + bias, then out + result when accumulating, stored only inside (M, N). The layouts
 * differ only in which output row and column each accumulator holds.
 *
 * @module
 */

import type { MatmulVariant } from "./matmul.ts";

const COMP = ["x", "y", "z", "w"];

/** Where a register block lands and how it is stored. */
export interface EpilogueBlock {
  /** Accumulator rows, and vec4 column groups per row. */
  rows: number;
  colGroups: number;
  /** The output row (a u32 WGSL expression) of accumulator row r. */
  row(r: number): string;
  /** The first output column (a u32 WGSL expression) of column group c4. */
  col(c4: number): string;
  /** `out` is bound as vec4 (N a multiple of 4): one store per group. */
  vecOut: boolean;
  /** A bias vector (N) is added. */
  bias: boolean;
}

/** Emits the epilogue of `block` through `emit`, at two spaces of indentation. */
export function emitEpilogue(emit: (line: string) => void, block: EpilogueBlock): void {
  for (let r = 0; r < block.rows; r++) {
    emit(`  {`);
    emit(`    let i = ${block.row(r)};`);
    emit(`    if (i < M) {`);
    emit(`      let row = i * N;`);
    for (let c4 = 0; c4 < block.colGroups; c4++) {
      const j = `(${block.col(c4)})`;
      if (block.vecOut) {
        emit(`      if (${j} < N) {`);
        emit(`        var value = acc${r}_${c4};`);
        if (block.bias) {
          const bias = COMP.map((_, e) => `biasBuf[${j} + ${e}u]`).join(", ");
          emit(`        value += vec4<f32>(${bias});`);
        }
        emit(`        let idx = (row + ${j}) >> 2u;`);
        emit(`        if (u.accumulate != 0u) { value = outBuf[idx] + value; }`);
        emit(`        outBuf[idx] = value;`);
        emit(`      }`);
      } else {
        for (let e = 0; e < 4; e++) {
          emit(`      if (${j} + ${e}u < N) {`);
          emit(`        var value = acc${r}_${c4}.${COMP[e]};`);
          if (block.bias) emit(`        value += biasBuf[${j} + ${e}u];`);
          emit(`        let idx = row + ${j} + ${e}u;`);
          emit(`        if (u.accumulate != 0u) { value = outBuf[idx] + value; }`);
          emit(`        outBuf[idx] = value;`);
          emit(`      }`);
        }
      }
    }
    emit(`    }`);
    emit(`  }`);
  }
}

/** The transposes and bindings part of a hardware kernel's name, e.g. `matmul_NT_ab_+_`. */
export function variantTag(v: MatmulVariant): string {
  const flag = (b: boolean, s: string) => (b ? s : "_");
  return `matmul_${v.transA ? "T" : "N"}${v.transB ? "T" : "N"}_` +
    flag(v.vecA, "a") + flag(v.vecB, "b") + flag(v.vecOut, "o") + flag(v.bias, "+") + "_";
}

/** Emits the header comment, uniforms and f32 bindings of a hardware layout's kernel. */
export function emitPrologue(
  emit: (line: string) => void,
  v: MatmulVariant,
  name: string,
): void {
  const elem = (vec: boolean) => (vec ? "vec4<f32>" : "f32");
  emit(
    `// out: (M,N) = a: ${v.transA ? "(K,M)^T" : "(M,K)"} @ b: ${v.transB ? "(N,K)^T" : "(K,N)"}` +
      (v.bias ? " + bias: (N)" : "") + ` (${name})`,
  );
  emit(`struct Params { M: u32, N: u32, K: u32, accumulate: u32 }`);
  emit(`@group(0) @binding(0) var<uniform> u: Params;`);
  emit(`@group(0) @binding(1) var<storage, read_write> outBuf: array<${elem(v.vecOut)}>;`);
  emit(`@group(0) @binding(2) var<storage, read_write> aBuf: array<${elem(v.vecA)}>;`);
  emit(`@group(0) @binding(3) var<storage, read_write> bBuf: array<${elem(v.vecB)}>;`);
  if (v.bias) emit(`@group(0) @binding(4) var<storage, read_write> biasBuf: array<f32>;`);
}
