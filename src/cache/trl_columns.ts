/**
 * The reference cache as TRL's dataset columns: `ref_chosen_logps` and `ref_rejected_logps`, the
 * columns TRL's DPOTrainer adds when it precomputes the reference (`precompute_ref_log_probs`) and
 * reads instead of running a reference model when a dataset already has them. Pure: rows in, rows
 * out; the stage that reads files is src/pipeline/cache_export.ts.
 *
 * @module
 */

import { stableStringify } from "../io/hash.ts";
import { CacheError, type CacheHeader } from "./reference_cache.ts";

/** TRL's column of the reference's summed log-prob of the chosen completion. */
export const REF_CHOSEN_COLUMN = "ref_chosen_logps";
/** TRL's column of the reference's summed log-prob of the rejected completion. */
export const REF_REJECTED_COLUMN = "ref_rejected_logps";
/** The Parquet key-value metadata key (and the JSONL sidecar's top key) of a cache's identity. */
export const IDENTITY_KEY = "dpo_webgpu.reference_cache";

/** What an exported file says of the cache it came from (everything but the payload). */
export type ExportedIdentity = Omit<CacheHeader, "columns" | "payload_sha256"> & {
  /** SHA-256 of the cache file's payload, so the file names the cache it came from. */
  payload_sha256: string;
  /** Rows written, and rows of the dataset the cache has no value for (dropped when prepared). */
  rows: number;
  /** Rows of the dataset left out (the run dropped them: too long, invalid). */
  dropped: number;
};

/** Where a row came from, as the key of a map: file and 1-based line. */
export function rowKey(file: string, line: number): string {
  return `${file}\u0000${line}`;
}

/**
 * A row's content without TRL's reference columns, as a canonical string: the key that matches a
 * row of a dataset to the same row of another file (an export, TRL's own precomputed dataset)
 * whatever their order or the columns around it.
 */
export function contentKey(row: Record<string, unknown>): string {
  const { [REF_CHOSEN_COLUMN]: _, [REF_REJECTED_COLUMN]: __, ...rest } = row;
  return stableStringify(rest);
}

/** A row with the reference's two log-probs added as TRL's columns. */
export function withReferenceColumns(
  row: Record<string, unknown>,
  chosen: number,
  rejected: number,
): Record<string, unknown> {
  return { ...row, [REF_CHOSEN_COLUMN]: chosen, [REF_REJECTED_COLUMN]: rejected };
}

/**
 * The reference log-probs a row carries in TRL's columns, checked: both present, finite numbers.
 *
 * @param where the row's file:line, for messages
 * @throws {CacheError} a missing, non-number or non-finite value (exit code 2)
 */
export function referenceColumnsOf(
  row: Record<string, unknown>,
  where: string,
): [number, number] {
  const out: number[] = [];
  for (const column of [REF_CHOSEN_COLUMN, REF_REJECTED_COLUMN]) {
    const v = row[column];
    if (v === undefined || v === null) {
      throw new CacheError(
        `${where}: no ${column} column; give a dataset with TRL's precomputed reference columns ` +
          "(deno task cache-export, or TRL's DPOTrainer with precompute_ref_log_probs=True)",
      );
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new CacheError(`${where}: ${column} is ${JSON.stringify(v)}, not a finite number`);
    }
    out.push(v);
  }
  return [out[0], out[1]];
}

/**
 * Rows by content, each content a queue in file order, so that the k-th copy of a repeated row
 * in one file matches the k-th copy in another.
 */
export class RowsByContent {
  private readonly rows = new Map<string, Array<{ row: Record<string, unknown>; where: string }>>();

  /** Adds a row (with where it came from, for messages). */
  add(row: Record<string, unknown>, where: string): void {
    const key = contentKey(row);
    const list = this.rows.get(key);
    if (list) list.push({ row, where });
    else this.rows.set(key, [{ row, where }]);
  }

  /** Takes the next row of the same content as `row`, or undefined when none is left. */
  take(row: Record<string, unknown>): { row: Record<string, unknown>; where: string } | undefined {
    return this.rows.get(contentKey(row))?.shift();
  }

  /** Rows not taken. */
  get left(): number {
    let n = 0;
    for (const list of this.rows.values()) n += list.length;
    return n;
  }
}
