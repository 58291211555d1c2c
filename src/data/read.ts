/**
 * Reads the records of one dataset file: JSON Lines, a JSON array, or Parquet. Each record keeps
 * its file and 1-based line (the element's first line in a JSON array, the row number in
 * Parquet), and a record that cannot be decoded (bad UTF-8, invalid JSON) carries the problem
 * instead of a value, so validation can report every broken row, not only the first.
 *
 * @module
 */

import { parquetMetadata, parquetReadObjects, parquetSchema } from "hyparquet";

/** One record of a dataset file: a decoded value, or the reason it could not be decoded. */
export interface RawRecord {
  /** The file the record was read from. */
  file: string;
  /** Its 1-based line (for Parquet, the 1-based row). */
  line: number;
  /** The decoded row (any JSON value); absent when `issue` is set. */
  value?: unknown;
  /** Why the record could not be decoded, as field and problem. */
  issue?: { field: string; problem: string };
}

/** File name endings this reader understands. */
export const DATASET_EXTENSIONS = [".jsonl", ".ndjson", ".json", ".parquet"] as const;

/** Whether a file name looks like a dataset file this module can read. */
export function isDatasetFile(name: string): boolean {
  const lower = name.toLowerCase();
  return DATASET_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/**
 * Decodes a dataset file. Parquet is chosen by the `.parquet` ending; other files are sniffed like
 * HF `datasets` does for `.json`: a first non-blank `[` means a JSON array, anything else JSON Lines.
 *
 * @param bytes the file's content
 * @param file the name used in reports
 */
export async function readRecords(bytes: Uint8Array, file: string): Promise<RawRecord[]> {
  if (file.toLowerCase().endsWith(".parquet")) return await readParquet(bytes, file);
  let start = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3; // UTF-8 BOM
  while (start < bytes.length && isSpace(bytes[start])) start++;
  return bytes[start] === 0x5b ? readJsonArray(bytes, file) : readJsonLines(bytes, file);
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const lenientDecoder = new TextDecoder("utf-8");

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Byte ranges [start, end) of each line, without the `\n` (and a trailing `\r`). */
function lineRanges(bytes: Uint8Array): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      let end = i;
      if (end > start && bytes[end - 1] === 0x0d) end--;
      ranges.push([start, end]);
      start = i + 1;
    }
  }
  return ranges;
}

function jsonProblem(error: unknown): string {
  const detail = error instanceof Error ? error.message : String(error);
  return `invalid JSON (${detail})`;
}

function readJsonLines(bytes: Uint8Array, file: string): RawRecord[] {
  const records: RawRecord[] = [];
  lineRanges(bytes).forEach(([start, end], index) => {
    const line = index + 1;
    const slice = bytes.subarray(start, end);
    if (slice.every(isSpace)) return; // blank lines are not rows
    let text: string;
    try {
      text = fatalDecoder.decode(slice);
    } catch {
      records.push({ file, line, issue: { field: "row", problem: "invalid UTF-8" } });
      return;
    }
    try {
      records.push({ file, line, value: JSON.parse(text) });
    } catch (error) {
      records.push({ file, line, issue: { field: "row", problem: jsonProblem(error) } });
    }
  });
  return records;
}

/**
 * A JSON array file: the elements are found with a small scanner (strings, nesting) so that each
 * is parsed on its own and reported with the line it starts on.
 */
function readJsonArray(bytes: Uint8Array, file: string): RawRecord[] {
  const badLines = new Set<number>();
  lineRanges(bytes).forEach(([start, end], index) => {
    try {
      fatalDecoder.decode(bytes.subarray(start, end));
    } catch {
      badLines.add(index + 1);
    }
  });
  const text = lenientDecoder.decode(bytes);
  const records: RawRecord[] = [];
  let line = 1;
  let pos = text.indexOf("[") + 1;
  for (let i = 0; i < pos; i++) if (text[i] === "\n") line++;
  const skipSpace = () => {
    while (pos < text.length && /\s/.test(text[pos])) {
      if (text[pos] === "\n") line++;
      pos++;
    }
  };
  for (;;) {
    skipSpace();
    if (pos >= text.length) {
      records.push({
        file,
        line,
        issue: { field: "row", problem: "invalid JSON (unterminated array)" },
      });
      return records;
    }
    if (text[pos] === "]") return records;
    const startLine = line;
    const start = pos;
    let depth = 0;
    let inString = false;
    for (; pos < text.length; pos++) {
      const c = text[pos];
      if (c === "\n") line++;
      if (inString) {
        if (c === "\\") pos++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        if (depth === 0) break;
        depth--;
      } else if (c === "," && depth === 0) break;
    }
    if (pos === start) {
      // A stray closing bracket ("}" at the top, "]" after a comma): the array's structure is
      // broken from here on, so the scan stops instead of looping in place (found by fuzzing).
      records.push({
        file,
        line,
        issue: { field: "row", problem: `invalid JSON (unexpected "${text[pos]}" in the array)` },
      });
      return records;
    }
    const endLine = line;
    let bad = false;
    for (let l = startLine; l <= endLine; l++) bad ||= badLines.has(l);
    if (bad) {
      records.push({ file, line: startLine, issue: { field: "row", problem: "invalid UTF-8" } });
    } else {
      try {
        records.push({ file, line: startLine, value: JSON.parse(text.slice(start, pos)) });
      } catch (error) {
        records.push({
          file,
          line: startLine,
          issue: { field: "row", problem: jsonProblem(error) },
        });
      }
    }
    if (text[pos] === ",") pos++;
  }
}

/** Marks a Parquet string whose bytes are not UTF-8, so validation can name its field. */
class InvalidUtf8 {}

/**
 * Every column chunk's path must be in the schema: hyparquet finds a missing one while it starts
 * the reads of a row group's chunks, throws, and leaves the chunks already started unawaited;
 * their errors then escaped as unhandled rejections that killed the process (found by fuzzing).
 * @throws Error (reported as invalid Parquet) naming the column.
 */
function checkColumnPaths(file: ArrayBuffer): void {
  const metadata = parquetMetadata(file);
  const root = parquetSchema(metadata);
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns) {
      let node = root;
      for (const part of chunk.meta_data?.path_in_schema ?? []) {
        const child = node.children.find((c) => c.element.name === part);
        if (!child) throw new Error(`column chunk of "${part}" not in the schema`);
        node = child;
      }
    }
  }
}

async function readParquet(bytes: Uint8Array, file: string): Promise<RawRecord[]> {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let rows: Record<string, unknown>[];
  try {
    checkColumnPaths(buffer as ArrayBuffer);
    rows = await parquetReadObjects({
      file: buffer as ArrayBuffer,
      rowFormat: "object",
      parsers: {
        stringFromBytes: (raw: Uint8Array) => {
          if (raw === undefined) return raw;
          try {
            return fatalDecoder.decode(raw);
          } catch {
            return new InvalidUtf8();
          }
        },
      },
    });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return [{ file, line: 1, issue: { field: "file", problem: `invalid Parquet (${detail})` } }];
  }
  return rows.map((row, index) => {
    const bad: string[] = [];
    const value = normalizeParquet(row, "", bad);
    if (bad.length > 0) {
      return { file, line: index + 1, issue: { field: bad[0], problem: "invalid UTF-8" } };
    }
    return { file, line: index + 1, value };
  });
}

/**
 * Turns Parquet values into what JSON would give: BigInt to number (token ids are int64 in HF
 * Parquet files), typed arrays to plain arrays; collects the paths of undecodable strings.
 */
function normalizeParquet(value: unknown, path: string, bad: string[]): unknown {
  if (value instanceof InvalidUtf8) {
    bad.push(path || "row");
    return undefined;
  }
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(
      value as unknown as ArrayLike<unknown>,
      (v, i) => normalizeParquet(v, `${path}[${i}]`, bad),
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => normalizeParquet(v, `${path}[${i}]`, bad));
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = normalizeParquet(v, path ? `${path}.${key}` : key, bad);
    }
    return out;
  }
  return value;
}

/** A Parquet file's key-value metadata (keys without a value are left out); {} when unreadable. */
export function parquetKeyValues(bytes: Uint8Array): Record<string, string> {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  try {
    const metadata = parquetMetadata(buffer as ArrayBuffer);
    return Object.fromEntries(
      (metadata.key_value_metadata ?? [])
        .filter((kv) => kv.value !== undefined)
        .map((kv) => [kv.key, kv.value as string]),
    );
  } catch {
    return {};
  }
}
