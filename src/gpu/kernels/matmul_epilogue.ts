/**
 * The store of a matmul's register block, shared by the software (kernels/matmul.ts) and tiled
 * (kernels/matmul_tiled.ts) layouts: for each accumulator row `acc{r}_{c4}` (vec4 of four output
 * columns), + bias, then out + result when accumulating, stored only inside (M, N). The layouts
 * differ only in which output row and column each accumulator holds.
 *
 * @module
 */

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
