/**
 * The reference log-prob cache: what the reference model says of every preference pair, computed
 * once by the precompute stage so that DPO training never loads the reference. The format is
 * documented in docs/cache.md.
 *
 * Layout: magic `DPOREFC1` (8 bytes), header length (u32 little-endian), header (UTF-8 JSON,
 * padded with spaces to a multiple of 8 bytes), payload: columns one after another, each
 * `count` values little-endian (f64 columns first, then u32 columns, so all stay aligned).
 *
 * @module
 */

import { sha256Hex } from "../io/hash.ts";

/** Magic bytes at the start of every cache file. */
export const CACHE_MAGIC = "DPOREFC1";
/** Version of the header and payload layout. */
export const CACHE_FORMAT_VERSION = 1;

/** A column of the payload. */
export interface CacheColumn {
  /** Column name, e.g. `chosen_logp`. */
  name: string;
  /** Element type of the column in the payload. */
  dtype: "f64" | "u32";
}

/** The preference-pair columns, in payload order. */
export const PAIR_COLUMNS: CacheColumn[] = [
  { name: "chosen_logp", dtype: "f64" },
  { name: "rejected_logp", dtype: "f64" },
  { name: "chosen_len", dtype: "u32" },
  { name: "rejected_len", dtype: "u32" },
];

/**
 * KTO's columns (src/pipeline/kto.ts): each unpaired example's completion and its mismatched
 * pair (the prompt with the completion of the next example in dataset order), which KTO's KL
 * estimate z0 reads.
 */
export const KTO_COLUMNS: CacheColumn[] = [
  { name: "completion_logp", dtype: "f64" },
  { name: "kl_logp", dtype: "f64" },
  { name: "completion_len", dtype: "u32" },
  { name: "kl_len", dtype: "u32" },
];

/** One dataset split the cache covers (a training set, an eval set). */
export interface CacheSection {
  /** `train` or `eval`. */
  name: string;
  /** Fingerprint of the processed split (file bytes, load options, tokenizer, token options). */
  dataset_fingerprint: string;
  /** The dataset path it was read from (informational). */
  source: string;
  /** SHA-256 of each file read, so a refusal can say the data changed. */
  file_hashes: string[];
  /** Examples of this split; sections follow each other in the payload. */
  count: number;
}

/** The cache header: everything needed to decide whether the cache still fits a run. */
export interface CacheHeader {
  /** Version of this layout (`CACHE_FORMAT_VERSION`). */
  format_version: number;
  /** SHA-256 of the reference model's config and weights. */
  reference_fingerprint: string;
  /** Where the reference came from (a path), for the manifest; not compared. */
  reference_source?: string;
  /** The dataset splits, in payload order. */
  sections: CacheSection[];
  /** Fingerprint of the tokenizer files. */
  tokenizer_fingerprint: string;
  /** Every option that changes token ids (max lengths, truncation, template...). */
  token_options: Record<string, unknown>;
  /** Examples in all sections together. */
  total: number;
  /** Start of the examples [start, end) this file holds (a shard when not the whole). */
  start: number;
  /** End (exclusive) of the examples this file holds. */
  end: number;
  /** The payload's columns, in order. */
  columns: CacheColumn[];
  /** SHA-256 of the payload bytes. */
  payload_sha256: string;
  /** Adapter the numbers were computed on. */
  adapter?: string;
  /**
   * When an older version wrote the cache (ISO 8601). No longer written: a cache holds no
   * wall-clock time, so the same inputs give the same bytes however they were sharded; the
   * time is in the stage's manifest (`started`, `finished`).
   */
  created?: string;
}

/** A cache in memory: its header and one typed array per column. */
export interface ReferenceCache {
  /** The header: identity of the reference, data and token options. */
  header: CacheHeader;
  /** One array per column, by column name. */
  columns: Record<string, Float64Array | Uint32Array>;
}

/** Raised for a corrupt or unreadable cache (exit code 2). */
export class CacheError extends Error {
  /** The exit code a command-line task should end with: 2, bad input. */
  readonly exitCode = 2;
  /** A cache error with its message (the file and what is wrong). */
  constructor(message: string) {
    super(message);
    this.name = "CacheError";
  }
}

function payloadOf(columns: CacheColumn[], values: ReferenceCache["columns"], count: number) {
  const bytes = new Uint8Array(
    columns.reduce((n, c) => n + count * (c.dtype === "f64" ? 8 : 4), 0),
  );
  const view = new DataView(bytes.buffer);
  let offset = 0;
  for (const c of columns) {
    const data = values[c.name];
    if (!data || data.length !== count) {
      throw new Error(`cache column ${c.name} must have ${count} values`);
    }
    for (let i = 0; i < count; i++) {
      if (c.dtype === "f64") view.setFloat64(offset + i * 8, data[i], true);
      else view.setUint32(offset + i * 4, data[i], true);
    }
    offset += count * (c.dtype === "f64" ? 8 : 4);
  }
  return bytes;
}

/** Serialises a cache; `header.payload_sha256` is computed here. */
export async function encodeCache(
  header: Omit<CacheHeader, "payload_sha256" | "format_version" | "columns">,
  columns: ReferenceCache["columns"],
  columnSpec: CacheColumn[] = PAIR_COLUMNS,
): Promise<Uint8Array> {
  const count = header.end - header.start;
  const payload = payloadOf(columnSpec, columns, count);
  const full: CacheHeader = {
    format_version: CACHE_FORMAT_VERSION,
    ...header,
    columns: columnSpec,
    payload_sha256: await sha256Hex(payload),
  };
  let json = JSON.stringify(full);
  while ((json.length + 12) % 8 !== 0) json += " ";
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(12 + headerBytes.length + payload.length);
  out.set(new TextEncoder().encode(CACHE_MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  out.set(payload, 12 + headerBytes.length);
  return out;
}

/**
 * Parses a cache file and verifies its checksum.
 *
 * @param source the file's path, for error messages.
 * @throws {CacheError} naming the file and what is wrong.
 */
export async function decodeCache(bytes: Uint8Array, source: string): Promise<ReferenceCache> {
  const fail = (why: string): never => {
    throw new CacheError(
      `${source}: ${why}; rebuild it with \`deno task precompute\``,
    );
  };
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== CACHE_MAGIC) {
    fail("not a reference cache (bad magic bytes)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length) fail("truncated header");
  let header: CacheHeader;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(12, 12 + headerLength),
    ));
  } catch (error) {
    return fail(`unreadable header (${(error as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("its header is not a JSON object");
  }
  if (header.format_version !== CACHE_FORMAT_VERSION) {
    fail(`format version ${header.format_version}, this program reads ${CACHE_FORMAT_VERSION}`);
  }
  // The header's shape before any of it is used (a damaged file, found by fuzzing).
  const { start, end } = header;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    fail(`header rows start ${start}, end ${end}: expected integers with 0 <= start <= end`);
  }
  if (
    !Array.isArray(header.columns) ||
    !header.columns.every((c) =>
      typeof c === "object" && c !== null && typeof c.name === "string" &&
      (c.dtype === "f64" || c.dtype === "u32")
    )
  ) {
    fail('header "columns" must be a list of {name, dtype: "f64" | "u32"}');
  }
  if (typeof header.payload_sha256 !== "string") fail('header has no "payload_sha256"');
  const count = header.end - header.start;
  const payload = bytes.subarray(12 + headerLength);
  const expected = header.columns.reduce((n, c) => n + count * (c.dtype === "f64" ? 8 : 4), 0);
  if (payload.length !== expected) {
    fail(`payload is ${payload.length} bytes, the header describes ${expected}`);
  }
  if (await sha256Hex(payload) !== header.payload_sha256) {
    fail("payload checksum mismatch (the file is corrupted)");
  }
  const columns: ReferenceCache["columns"] = {};
  const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let offset = 0;
  for (const c of header.columns) {
    const data = c.dtype === "f64" ? new Float64Array(count) : new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      data[i] = c.dtype === "f64"
        ? pv.getFloat64(offset + i * 8, true)
        : pv.getUint32(offset + i * 4, true);
    }
    offset += count * (c.dtype === "f64" ? 8 : 4);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      return fail(
        `column ${c.name} holds ${data[bad]} at row ${bad}: a reference log-prob must be finite ` +
          "(recompute the cache with deno task precompute --force)",
      );
    }
    columns[c.name] = data;
  }
  return { header, columns };
}

/**
 * Joins shards of one dataset into a whole cache. They must share every fingerprint and option
 * and cover [0, total) without gap or overlap.
 */
export async function mergeCaches(
  shards: ReferenceCache[],
  sources: string[],
): Promise<Uint8Array> {
  if (shards.length === 0) throw new CacheError("no shards to merge");
  const order = shards.map((s, i) => ({ s, source: sources[i] })).sort((a, b) =>
    a.s.header.start - b.s.header.start
  );
  const first = order[0].s.header;
  const key = (h: CacheHeader) =>
    JSON.stringify([
      h.reference_fingerprint,
      h.sections,
      h.tokenizer_fingerprint,
      h.token_options,
      h.total,
      h.columns,
    ]);
  const problems: string[] = [];
  for (const { s, source } of order.slice(1)) {
    if (key(s.header) !== key(first)) {
      problems.push(
        `${source} was built from another reference, dataset or options than ${order[0].source}`,
      );
    }
  }
  let next = 0;
  for (let i = 0; i < order.length; i++) {
    const { s, source } = order[i];
    const previous = order[i - 1];
    if (previous && s.header.start < next) {
      problems.push(
        previous.s.header.start === s.header.start && previous.s.header.end === s.header.end
          ? `${source} duplicates ${previous.source} (examples ${s.header.start}..${s.header.end})`
          : `${source} (examples ${s.header.start}..${s.header.end}) overlaps ${previous.source} ` +
            `(examples ${previous.s.header.start}..${previous.s.header.end})`,
      );
    } else if (s.header.start > next) {
      problems.push(`examples ${next}..${s.header.start} are missing (no shard covers them)`);
    }
    next = Math.max(next, s.header.end);
  }
  if (next < first.total) {
    problems.push(`examples ${next}..${first.total} are missing (no shard covers them)`);
  }
  if (problems.length) {
    throw new CacheError(
      `cannot merge ${shards.length} shards:\n  - ${problems.join("\n  - ")}\n` +
        "give every shard file once, each from the same precompute command",
    );
  }
  const columns: ReferenceCache["columns"] = {};
  for (const c of first.columns) {
    const Kind = c.dtype === "f64" ? Float64Array : Uint32Array;
    const all = new Kind(first.total);
    for (const { s } of order) all.set(s.columns[c.name], s.header.start);
    columns[c.name] = all;
  }
  const { payload_sha256: _, format_version: __, columns: spec, ...rest } = first;
  return await encodeCache({ ...rest, start: 0, end: first.total }, columns, spec);
}
