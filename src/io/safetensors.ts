/**
 * The safetensors format (https://github.com/huggingface/safetensors, "Format"):
 *
 *     [8 bytes: N, u64 little-endian][N bytes: JSON header][data section]
 *
 * The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`, offsets
 * relative to the start of the data section, plus an optional `"__metadata__"` string map.
 * Tensors are little-endian and row-major. Float tensors (F32, F16, BF16, F64) are read widened
 * or narrowed to float32; the writer emits F32 (or F16/BF16) the way the reference implementation
 * does: tensors sorted by name, header padded with spaces to a multiple of 8 bytes, and
 * `{"format":"pt"}` metadata, which transformers requires to load the file.
 *
 * @module
 */

import { decode16, encode16 } from "./half.ts";

/** A tensor on the host: shape and row-major float32 values (`data.length` = product of shape). */
export interface TensorData {
  /** Dimensions, outermost first. */
  shape: number[];
  /** Row-major values. */
  data: Float32Array;
}

/** One tensor's entry in a safetensors header. */
export interface SafetensorsEntry {
  /** The tensor's name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Safetensors dtype name as written in the file: `F32`, `F16`, `BF16`, `I64`, ... */
  dtype: string;
  /** Dimensions, outermost first (HF weights are `[out, in]`). */
  shape: number[];
  /** Byte range `[begin, end)` within the data section. */
  dataOffsets: [number, number];
}

/** A parsed safetensors header. */
export interface SafetensorsHeader {
  /** Entries in header order. */
  entries: SafetensorsEntry[];
  /** The `__metadata__` map, or an empty object when the file has none. */
  metadata: Record<string, string>;
  /** Byte offset of the data section within the file (8 + header length). */
  dataStart: number;
}

/** A malformed or unreadable safetensors file; the message names the file and what is wrong. */
export class SafetensorsError extends Error {
  /** An error naming `file` and what is wrong with it. */
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = "SafetensorsError";
  }
}

/** Bytes per element of every dtype in the format, so sizes can be checked even for unread ones. */
const ITEM_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Dtypes this module reads into float32. */
export const READABLE_DTYPES = ["F32", "F16", "BF16", "F64"] as const;
/** Dtypes this module writes. */
export type WritableDtype = "F32" | "F16" | "BF16";

/** The reference implementation refuses headers over 100 MB; so do we, before parsing them. */
const MAX_HEADER_BYTES = 100_000_000;

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function numel(shape: number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses and validates the header of a safetensors file.
 *
 * @param bytes the whole file
 * @param file name used in error messages
 * @throws {SafetensorsError} truncated file, header that is not JSON, malformed entries, offsets
 *   outside the data section, or byte ranges that do not match dtype and shape.
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  file = "<safetensors>",
): SafetensorsHeader {
  if (bytes.length < 8) {
    throw new SafetensorsError(
      file,
      `truncated: ${bytes.length} bytes, shorter than the 8-byte header length; re-download or re-save the file`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      file,
      `header length ${headerLength} exceeds 100 MB: not a safetensors file, or corrupted`,
    );
  }
  if (8 + headerLength > bytes.length) {
    throw new SafetensorsError(
      file,
      `truncated: the header claims ${headerLength} bytes but only ${
        bytes.length - 8
      } follow the length; re-download or re-save the file`,
    );
  }
  let header: unknown;
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SafetensorsError(
      file,
      `header is not valid JSON (${reason}): not a safetensors file, or corrupted`,
    );
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(file, "header is not a JSON object");
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new SafetensorsError(
      file,
      `tensor '${duplicate}' is named twice in the header (JSON would keep only the last); the file is corrupted, re-save it`,
    );
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value, file);
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const where = `tensor '${name}'`;
    if (typeof entry !== "object" || entry === null) {
      throw new SafetensorsError(file, `${where}: header entry is not an object`);
    }
    if (typeof entry.dtype !== "string") {
      throw new SafetensorsError(file, `${where}: missing "dtype"`);
    }
    if (!Array.isArray(entry.shape) || !entry.shape.every(isNonNegativeInteger)) {
      throw new SafetensorsError(
        file,
        `${where}: "shape" must be an array of non-negative integers, got ${
          JSON.stringify(entry.shape)
        }`,
      );
    }
    const offsets = entry.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger) ||
      offsets[0] > offsets[1]
    ) {
      throw new SafetensorsError(
        file,
        `${where}: "data_offsets" must be [begin, end] with 0 <= begin <= end, got ${
          JSON.stringify(offsets)
        }`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      throw new SafetensorsError(
        file,
        `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes): the file is truncated or corrupted`,
      );
    }
    const itemSize = ITEM_SIZE[entry.dtype];
    const shape = entry.shape as number[];
    if (itemSize !== undefined && end - begin !== numel(shape) * itemSize) {
      throw new SafetensorsError(
        file,
        `${where}: ${end - begin} bytes of data for ${entry.dtype} shape [${shape}] (expected ${
          numel(shape) * itemSize
        })`,
      );
    }
    entries.push({ name, dtype: entry.dtype, shape: [...shape], dataOffsets: [begin, end] });
  }
  return { entries, metadata, dataStart };
}

/**
 * The first key that the top-level object of a valid JSON text holds twice, or undefined.
 * JSON.parse keeps the last of duplicate keys silently; the reference implementation refuses them.
 */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === "{" || c === "[") {
      depth++;
      expectKey = depth === 1 && c === "{";
    } else if (c === "}" || c === "]") depth--;
    else if (c === "," && depth === 1) expectKey = true;
  }
  return undefined;
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new SafetensorsError(file, `"__metadata__" must be an object of strings`);
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (typeof item !== "string") {
      throw new SafetensorsError(
        file,
        `"__metadata__" value of '${key}' must be a string, got ${JSON.stringify(item)}`,
      );
    }
  }
  return { ...(value as Record<string, string>) };
}

/**
 * Decodes one tensor of a parsed file to float32: F32 copied, F16 and BF16 widened exactly, F64
 * rounded to nearest.
 *
 * @throws {SafetensorsError} for dtypes that are not floats (the message names tensor and dtype).
 */
export function decodeTensor(
  bytes: Uint8Array,
  header: SafetensorsHeader,
  entry: SafetensorsEntry,
  file = "<safetensors>",
): Float32Array {
  const offset = header.dataStart + entry.dataOffsets[0];
  const count = numel(entry.shape);
  switch (entry.dtype) {
    case "F32": {
      const out = new Float32Array(count);
      const source = bytes.subarray(offset, offset + 4 * count);
      if (IS_LITTLE_ENDIAN) {
        new Uint8Array(out.buffer).set(source); // copy: the file may not be 4-byte aligned
      } else {
        const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
        for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      }
      return out;
    }
    case "F16":
    case "BF16":
      return decode16(bytes, offset, count, entry.dtype);
    case "F64": {
      const out = new Float32Array(count);
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8 * count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    default:
      throw new SafetensorsError(
        file,
        `tensor '${entry.name}' has dtype ${entry.dtype}, which cannot be read as float32 (supported: ${
          READABLE_DTYPES.join(", ")
        }); convert it to a float dtype or drop it from the checkpoint`,
      );
  }
}

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** File name for error messages. @default "<safetensors>" */
  file?: string;
  /** Reads only the tensors for which this returns true. @default every tensor */
  include?: (name: string) => boolean;
}

/**
 * Reads every float tensor of a safetensors file into float32.
 *
 * @example
 * ```ts
 * const { tensors } = readSafetensors(await store.readFile("model.safetensors"));
 * tensors.get("model.norm.weight")!.data; // Float32Array
 * ```
 */
export function readSafetensors(
  bytes: Uint8Array,
  options: ReadSafetensorsOptions = {},
): { tensors: Map<string, TensorData>; metadata: Record<string, string> } {
  const file = options.file ?? "<safetensors>";
  const header = parseSafetensorsHeader(bytes, file);
  const tensors = new Map<string, TensorData>();
  for (const entry of header.entries) {
    if (options.include && !options.include(entry.name)) continue;
    tensors.set(entry.name, { shape: entry.shape, data: decodeTensor(bytes, header, entry, file) });
  }
  return { tensors, metadata: header.metadata };
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Dtype of every tensor in the file; F16/BF16 round to nearest even. @default "F32" */
  dtype?: WritableDtype;
  /** Extra `__metadata__` entries; `format` defaults to `"pt"`, which transformers requires. */
  metadata?: Record<string, string>;
}

/**
 * Serialises tensors to safetensors bytes, laid out as the reference implementation does: sorted by
 * name, contiguous, header JSON padded with spaces so the data section starts at a multiple of 8.
 *
 * @throws {Error} when a tensor's data length does not match its shape.
 */
export function writeSafetensors(
  tensors: Map<string, TensorData> | Iterable<[string, TensorData]>,
  options: WriteSafetensorsOptions = {},
): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const itemSize = ITEM_SIZE[dtype];
  if (!["F32", "F16", "BF16"].includes(dtype)) {
    throw new Error(`writeSafetensors: dtype ${dtype} is not supported (F32, F16, BF16)`);
  }
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const metadata = { format: "pt", ...options.metadata };
  // Built by hand: a JS object would move integer-like tensor names ("0") ahead of the others.
  const parts = [`"__metadata__":${JSON.stringify(metadata)}`];
  let dataLength = 0;
  for (const [name, tensor] of sorted) {
    if (name === "__metadata__") {
      throw new Error(`writeSafetensors: "__metadata__" is reserved and cannot name a tensor`);
    }
    if (!tensor.shape.every(isNonNegativeInteger) || tensor.data.length !== numel(tensor.shape)) {
      throw new Error(
        `writeSafetensors: tensor '${name}' has ${tensor.data.length} values for shape [${tensor.shape}]`,
      );
    }
    const end = dataLength + tensor.data.length * itemSize;
    parts.push(
      `${JSON.stringify(name)}:${
        JSON.stringify({ dtype, shape: tensor.shape, data_offsets: [dataLength, end] })
      }`,
    );
    dataLength = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let offset = 8 + headerLength;
  for (const [, tensor] of sorted) {
    const values = tensor.data;
    if (dtype === "F32") {
      if (IS_LITTLE_ENDIAN) {
        out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
      } else {for (let i = 0; i < values.length; i++) {
          new DataView(out.buffer).setFloat32(offset + 4 * i, values[i], true);
        }}
    } else {
      encode16(values, dtype, out, offset);
    }
    offset += values.length * itemSize;
  }
  return out;
}
