/**
 * Writing dataset rows back out, in the formats {@link readRecords} reads: JSON Lines, or Parquet
 * with a native schema (strings, booleans, int64, float64, lists of them, lists of structs such as
 * TRL's conversational messages), so that `datasets.load_dataset("parquet", ...)` gives TRL the
 * same columns and types it was given. A column whose values fit none of these is written as a
 * JSON string (Parquet's JSON type), and the writer says which.
 *
 * @module
 */

import { parquetWriteBuffer } from "hyparquet-writer";

/** A Parquet schema element, as hyparquet-writer takes it (parquet-format's SchemaElement). */
interface SchemaNode {
  name: string;
  type?: string;
  converted_type?: string;
  repetition_type?: "REQUIRED" | "OPTIONAL" | "REPEATED";
  num_children?: number;
}

type Leaf = "STRING" | "BOOLEAN" | "INT64" | "DOUBLE";

function leafOf(values: unknown[]): Leaf | undefined {
  let kind: Leaf | undefined;
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const k: Leaf | undefined = typeof v === "string"
      ? "STRING"
      : typeof v === "boolean"
      ? "BOOLEAN"
      : typeof v === "number" && Number.isSafeInteger(v)
      ? "INT64"
      : typeof v === "number"
      ? "DOUBLE"
      : undefined;
    if (k === undefined) return undefined;
    if (kind === undefined || kind === k) kind = k;
    else if ((kind === "INT64" && k === "DOUBLE") || (kind === "DOUBLE" && k === "INT64")) {
      kind = "DOUBLE";
    } else return undefined;
  }
  return kind ?? "STRING";
}

function leafNode(name: string, leaf: Leaf, optional: boolean): SchemaNode {
  const base: SchemaNode = leaf === "STRING"
    ? { name, type: "BYTE_ARRAY", converted_type: "UTF8" }
    : { name, type: leaf };
  return { ...base, repetition_type: optional ? "OPTIONAL" : "REQUIRED" };
}

function convertLeaf(v: unknown, leaf: Leaf): unknown {
  if (v === null || v === undefined) return null;
  return leaf === "INT64" ? BigInt(v as number) : v;
}

/** The schema nodes of one column and its values converted for the writer, or undefined. */
function columnSchema(
  name: string,
  values: unknown[],
): { nodes: SchemaNode[]; data: unknown[] } | undefined {
  const optional = values.some((v) => v === null || v === undefined);
  const present = values.filter((v) => v !== null && v !== undefined);
  if (!present.some(Array.isArray)) {
    const leaf = leafOf(values);
    if (!leaf) return undefined;
    return {
      nodes: [leafNode(name, leaf, optional)],
      data: values.map((v) => convertLeaf(v, leaf)),
    };
  }
  if (!present.every(Array.isArray)) return undefined;
  const items = (present as unknown[][]).flat();
  const list: SchemaNode[] = [
    { name, repetition_type: optional ? "OPTIONAL" : "REQUIRED", converted_type: "LIST" },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
  ];
  const isRecord = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (items.length > 0 && items.every(isRecord)) {
    const keys = [...new Set(items.flatMap((o) => Object.keys(o as object)))];
    const fields: SchemaNode[] = [];
    const leaves: Leaf[] = [];
    for (const key of keys) {
      const vs = items.map((o) => (o as Record<string, unknown>)[key]);
      const leaf = leafOf(vs);
      if (!leaf) return undefined;
      leaves.push(leaf);
      fields.push(leafNode(key, leaf, vs.some((v) => v === null || v === undefined)));
    }
    return {
      nodes: [
        { ...list[0], num_children: 1 },
        list[1],
        { name: "element", repetition_type: "REQUIRED", num_children: keys.length },
        ...fields,
      ],
      data: values.map((v) =>
        Array.isArray(v)
          ? v.map((o) => Object.fromEntries(keys.map((k, i) => [k, convertLeaf(o[k], leaves[i])])))
          : null
      ),
    };
  }
  const leaf = leafOf(items);
  if (!leaf || items.some(Array.isArray)) return undefined;
  return {
    nodes: [{ ...list[0], num_children: 1 }, list[1], leafNode("element", leaf, false)],
    data: values.map((v) => (Array.isArray(v) ? v.map((x) => convertLeaf(x, leaf)) : null)),
  };
}

/** What {@link rowsToParquet} wrote: the bytes, and the columns it had to store as JSON text. */
export interface ParquetRows {
  /** The Parquet file's bytes. */
  bytes: Uint8Array;
  /** Columns whose values had no native type here (written as JSON strings). */
  jsonColumns: string[];
}

/**
 * Rows (JSON-like objects) as a Parquet file with key-value metadata. Columns appear in the order
 * their keys first appear; a row without a key gets null there.
 *
 * @example
 * ```ts
 * const { bytes } = rowsToParquet([{ prompt: "a", chosen: "b", rejected: "c" }], { k: "v" });
 * ```
 */
export function rowsToParquet(
  rows: ReadonlyArray<Record<string, unknown>>,
  metadata: Record<string, string> = {},
): ParquetRows {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const schema: SchemaNode[] = [{ name: "root", num_children: names.length }];
  const columnData: Array<{ name: string; data: unknown[] }> = [];
  const jsonColumns: string[] = [];
  for (const name of names) {
    const values = rows.map((r) => r[name]);
    const column = columnSchema(name, values);
    if (column) {
      schema.push(...column.nodes);
      columnData.push({ name, data: column.data });
    } else {
      jsonColumns.push(name);
      schema.push({
        name,
        type: "BYTE_ARRAY",
        converted_type: "JSON",
        repetition_type: "OPTIONAL",
      });
      columnData.push({
        name,
        data: values.map((v) => (v === undefined ? null : JSON.stringify(v))),
      });
    }
  }
  const buffer = parquetWriteBuffer({
    // deno-lint-ignore no-explicit-any
    columnData: columnData as any,
    // deno-lint-ignore no-explicit-any
    schema: schema as any,
    kvMetadata: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
  return { bytes: new Uint8Array(buffer), jsonColumns };
}

/** Rows as JSON Lines (one object per line, a final newline). */
export function rowsToJsonl(rows: ReadonlyArray<Record<string, unknown>>): Uint8Array {
  return new TextEncoder().encode(rows.map((r) => JSON.stringify(r) + "\n").join(""));
}
