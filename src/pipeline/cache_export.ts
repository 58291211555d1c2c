/**
 * The reference cache to and from TRL's dataset columns. `exportCache` writes a dataset's rows
 * with `ref_chosen_logps` and `ref_rejected_logps` added (Parquet or JSON Lines), so that TRL's
 * DPOTrainer uses this project's reference numbers instead of loading a reference model;
 * `importCache` turns such a dataset (exported here, or precomputed by TRL or another tool) back
 * into this project's cache, so that `dpo` trains against it.
 *
 * @module
 */

import { cacheColumn, readCache } from "../cache/columns.ts";
import { assertCacheFits, cacheMismatches, cacheSections } from "../cache/identity.ts";
import { CacheError, type CacheHeader, encodeCache } from "../cache/reference_cache.ts";
import {
  type ExportedIdentity,
  IDENTITY_KEY,
  referenceColumnsOf,
  rowKey,
  RowsByContent,
  withReferenceColumns,
} from "../cache/trl_columns.ts";
import { collatePreference } from "../data/collate.ts";
import { resolveDatasetFiles } from "../data/files.ts";
import { preparePairs, type SplitSpec, type TokenOptions } from "../data/prepare.ts";
import { parquetKeyValues, readRecords } from "../data/read.ts";
import { rowsToJsonl, rowsToParquet } from "../data/write.ts";
import type { FileStore } from "../io/fs.ts";
import { dirname } from "../io/fs.ts";
import { readAdapter } from "../model/lora_io.ts";
import { modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { referenceFingerprint } from "./peft.ts";

/** Options of {@link exportCache}. */
export interface CacheExportOptions {
  /** The cache file (deno task precompute). */
  cache: string;
  /** The dataset the cache was built from, split as then. */
  data: SplitSpec;
  /** The held-out file the cache also covers, if it was built with one. */
  evalData?: SplitSpec;
  /** Token options; default: the cache's own. */
  tokenOptions?: TokenOptions;
  /** Tokenizer folder; default: the reference model the cache names. */
  tokenizer?: string;
  /** File to write, `.parquet` or `.jsonl`. */
  output: string;
  /** Where `evalData`'s rows go (same formats); without it they are not written. */
  evalOutput?: string;
}

/** What {@link exportCache} wrote. */
export interface ExportResult {
  /** Per file written: rows written, rows left out, bytes, columns stored as JSON text. */
  files: Array<{ path: string; rows: number; dropped: number; bytes: number; json: string[] }>;
}

/** Raw rows of a split's files, in file order, each with its file and line. */
async function rawRows(store: FileStore, spec: SplitSpec) {
  const split = spec.testFraction ? "train" : spec.split ?? "train";
  const rows: Array<{ file: string; line: number; value: Record<string, unknown> }> = [];
  for (const file of await resolveDatasetFiles(store, spec.path, split)) {
    for (const r of await readRecords(await store.readFile(file), file)) {
      if (r.value && typeof r.value === "object" && !Array.isArray(r.value)) {
        rows.push({ file, line: r.line, value: r.value as Record<string, unknown> });
      }
    }
  }
  return rows;
}

function formatOf(path: string): "parquet" | "jsonl" {
  const lower = path.toLowerCase();
  if (lower.endsWith(".parquet")) return "parquet";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  throw new CacheError(`${path}: write .parquet or .jsonl (chosen by the output's extension)`);
}

/** The sidecar of a JSON Lines export, holding the cache's identity. */
export function sidecarPath(path: string): string {
  return `${path}.cache.json`;
}

/**
 * Writes the rows of the dataset a cache was built from with TRL's reference columns added, the
 * cache's identity in the file's metadata (Parquet key-value metadata, or a sidecar JSON beside a
 * JSON Lines file). Rows the cache has no value for (dropped when prepared: too long, invalid)
 * are left out and counted.
 *
 * @throws {CacheError} a cache that does not belong to the dataset (as `dpo` refuses it)
 */
export async function exportCache(
  store: FileStore,
  options: CacheExportOptions,
  log: (line: string) => void = () => {},
): Promise<ExportResult> {
  const cache = await readCache(store, options.cache);
  const { header } = cache;
  if (!header.columns.some((c) => c.name === "chosen_logp")) {
    throw new CacheError(`${options.cache}: a KTO cache has no preference pairs to export`);
  }
  const tokenizer = options.tokenizer ?? header.reference_source?.split(" + ")[0];
  if (!tokenizer) {
    throw new CacheError(`${options.cache} names no reference model: give its folder with --model`);
  }
  const tokenOptions = options.tokenOptions ?? (header.token_options as TokenOptions);
  const { prepared } = await preparePairs(
    store,
    tokenizer,
    options.data,
    options.evalData,
    tokenOptions,
  );
  assertCacheFits(header, prepared, options.cache);
  const values = new Map<string, [number, number]>();
  for (const section of prepared.sections) {
    const column = cacheColumn(cache, section.name);
    section.examples.forEach((e, i) => values.set(rowKey(e.file, e.line), column(i)));
  }
  const { columns: _, payload_sha256, ...identity } = header;
  const targets = [{ spec: options.data, path: options.output }];
  if (options.evalData && options.evalOutput) {
    targets.push({ spec: options.evalData, path: options.evalOutput });
  } else if (options.evalData) {
    log(`the eval split (${options.evalData.path}) is not written: give --eval-output FILE`);
  }
  const result: ExportResult = { files: [] };
  for (const { spec, path } of targets) {
    const format = formatOf(path);
    const rows: Array<Record<string, unknown>> = [];
    let dropped = 0;
    for (const raw of await rawRows(store, spec)) {
      const v = values.get(rowKey(raw.file, raw.line));
      if (v) rows.push(withReferenceColumns(raw.value, v[0], v[1]));
      else dropped++;
    }
    const exported: ExportedIdentity = { ...identity, payload_sha256, rows: rows.length, dropped };
    const meta = JSON.stringify(exported);
    await store.mkdirp(dirname(path));
    let bytes: Uint8Array;
    let json: string[] = [];
    if (format === "parquet") {
      ({ bytes, jsonColumns: json } = rowsToParquet(rows, { [IDENTITY_KEY]: meta }));
    } else {
      bytes = rowsToJsonl(rows);
      const side = JSON.stringify({ [IDENTITY_KEY]: exported }, null, 2) + "\n";
      await store.writeFileAtomic(sidecarPath(path), new TextEncoder().encode(side));
    }
    await store.writeFileAtomic(path, bytes);
    if (json.length) {
      log(`${path}: columns ${json.join(", ")} have no Parquet type here: JSON text`);
    }
    result.files.push({ path, rows: rows.length, dropped, bytes: bytes.length, json });
  }
  return result;
}

/** Options of {@link importCache}. */
export interface CacheImportOptions {
  /** The dataset `dpo` will train on (it may be the file holding the columns). */
  data: SplitSpec;
  /** Held-out pairs `dpo` will read. */
  evalData?: SplitSpec;
  /** Files holding TRL's reference columns; default: `data` (and `evalData`) themselves. */
  logps?: string[];
  /** The reference model folder (its tokenizer tokenizes; its fingerprint goes in the header). */
  model: string;
  /** A PEFT adapter on `model` the reference was, if any. */
  adapter?: string;
  /** Token options `dpo` will use. */
  tokenOptions?: TokenOptions;
  /** The cache file to write. */
  output: string;
}

/** The identity an exported file carries: Parquet key-value metadata, or the JSONL sidecar. */
async function exportedIdentity(store: FileStore, path: string) {
  let text: string | undefined;
  if (path.toLowerCase().endsWith(".parquet")) {
    text = parquetKeyValues(await store.readFile(path))[IDENTITY_KEY];
  } else if (await store.exists(sidecarPath(path))) {
    text = JSON.stringify(JSON.parse(await store.readText(sidecarPath(path)))[IDENTITY_KEY]);
  }
  return text ? JSON.parse(text) as ExportedIdentity : undefined;
}

/**
 * Writes this project's cache from TRL's reference columns: every pair `dpo` will read gets the
 * values of its row (matched by content when the columns are in another file). The identity is
 * the flags' (model, tokenizer, token options, data); where the file carries an exported
 * identity, its tokenizer and token options must agree, since they decide the token counts.
 *
 * @throws {CacheError} a pair with no row or no value, a non-finite value, another tokenizer
 */
export async function importCache(
  store: FileStore,
  options: CacheImportOptions,
  log: (line: string) => void = () => {},
): Promise<{ examples: number; unused: number }> {
  const { prepared } = await preparePairs(
    store,
    options.model,
    options.data,
    options.evalData,
    options.tokenOptions,
  );
  const { config, weights } = await readModelFolder(store, options.model);
  const adapter = options.adapter
    ? await readAdapter(store, options.adapter, config, 0)
    : undefined;
  const reference = await referenceFingerprint(
    await modelFingerprint(config, weights),
    adapter?.fingerprint,
  );
  const specs = [options.data, ...(options.evalData ? [options.evalData] : [])];
  const own = new Map<string, Record<string, unknown>>();
  for (const spec of specs) {
    for (const r of await rawRows(store, spec)) own.set(rowKey(r.file, r.line), r.value);
  }
  const sources = options.logps ?? [...new Set(specs.map((s) => s.path))];
  const byContent = new RowsByContent();
  let computedOn: string | undefined;
  for (const path of sources) {
    const identity = await exportedIdentity(store, path);
    if (identity) {
      computedOn ??= identity.adapter;
      const reasons = cacheMismatches(
        { ...(identity as unknown as CacheHeader), start: 0, end: identity.total, sections: [] },
        { ...prepared, sections: [] },
      );
      if (reasons.length) {
        throw new CacheError(
          `${path}: its columns do not fit this run:\n  - ${reasons.join("\n  - ")}`,
        );
      }
      if (identity.reference_fingerprint !== reference) {
        log(`${path}: computed by another reference (${identity.reference_source}); kept as given`);
      }
    }
    for (const r of await rawRows(store, { path })) byContent.add(r.value, `${r.file}:${r.line}`);
  }
  const columns = {
    chosen_logp: [] as number[],
    rejected_logp: [] as number[],
    chosen_len: [] as number[],
    rejected_len: [] as number[],
  };
  for (const section of prepared.sections) {
    for (const e of section.examples) {
      const row = own.get(rowKey(e.file, e.line))!;
      const match = byContent.take(row);
      if (!match) {
        throw new CacheError(
          `${e.file}:${e.line}: no row of ${sources.join(", ")} has this pair ` +
            "(give the file TRL or deno task cache-export wrote for this dataset)",
        );
      }
      const [chosen, rejected] = referenceColumnsOf(match.row, match.where);
      const counts = collatePreference([e], { padTokenId: 0 }).tokenCounts;
      columns.chosen_logp.push(chosen);
      columns.rejected_logp.push(rejected);
      columns.chosen_len.push(counts[0]);
      columns.rejected_len.push(counts[1]);
    }
  }
  const total = columns.chosen_logp.length;
  const bytes = await encodeCache(
    {
      reference_fingerprint: reference,
      reference_source: options.adapter ? `${options.model} + ${options.adapter}` : options.model,
      sections: cacheSections(prepared),
      tokenizer_fingerprint: prepared.tokenizerFingerprint,
      token_options: prepared.tokenOptions,
      total,
      start: 0,
      end: total,
      adapter: computedOn ?? `imported from ${sources.join(", ")}`,
    },
    {
      chosen_logp: Float64Array.from(columns.chosen_logp),
      rejected_logp: Float64Array.from(columns.rejected_logp),
      chosen_len: Uint32Array.from(columns.chosen_len),
      rejected_len: Uint32Array.from(columns.rejected_len),
    },
  );
  await store.mkdirp(dirname(options.output));
  await store.writeFileAtomic(options.output, bytes);
  return { examples: total, unused: byContent.left };
}
