import assert from "node:assert/strict";
import {
  parseSafetensorsHeader,
  readSafetensors,
  SafetensorsError,
  type TensorData,
  writeSafetensors,
} from "../../src/io/safetensors.ts";
import { f32BitsToBf16Bits, f32BitsToF16Bits } from "../../src/io/half.ts";

function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

/** Builds a safetensors file by hand: header JSON (unpadded) and raw data bytes. */
function rawFile(
  header: unknown,
  data: Uint8Array = new Uint8Array(),
  headerText?: string,
): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16Bytes(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(out.buffer).setUint16(2 * i, v, true));
  return out;
}

function bitsOf(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert(error instanceof SafetensorsError, `expected SafetensorsError, got ${error}`);
    return error.message;
  }
  throw new Error("expected an error");
}

Deno.test("F32 tensors round trip bit-exactly through writeSafetensors and readSafetensors", () => {
  const tensors = new Map<string, TensorData>([
    ["b.weight", { shape: [2, 3], data: new Float32Array([1, -2.5, 3e-39, -0, Infinity, NaN]) }],
    ["a.bias", { shape: [3], data: new Float32Array([0.1, 0.2, 0.3]) }],
    ["scalar", { shape: [], data: new Float32Array([7]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
  const bytes = writeSafetensors(tensors);
  const { tensors: back, metadata } = readSafetensors(bytes);
  assertEquals(metadata, { format: "pt" });
  assertEquals([...back.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, tensor] of tensors) {
    assertEquals(back.get(name)!.shape, tensor.shape);
    assertEquals(bitsOf(back.get(name)!.data), bitsOf(tensor.data), name);
  }
});

Deno.test("writeSafetensors pads the header to 8 bytes, sorts tensors by name and sets format pt", () => {
  const tensors = new Map<string, TensorData>([
    ["z", { shape: [1], data: new Float32Array([1]) }],
    ["10", { shape: [1], data: new Float32Array([2]) }],
    ["a", { shape: [2], data: new Float32Array([3, 4]) }],
  ]);
  const bytes = writeSafetensors(tensors, { metadata: { step: "7" } });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(headerLength % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  assert(/^\{.*\} *$/.test(text), "header is JSON followed by spaces only");
  const header = parseSafetensorsHeader(bytes);
  assertEquals(header.metadata, { format: "pt", step: "7" });
  // Integer-like names stay in code-unit order ("10" < "a" < "z") in the header and in the data.
  assertEquals(header.entries.map((e) => e.name), ["10", "a", "z"]);
  assertEquals(header.entries.map((e) => e.dataOffsets), [[0, 4], [4, 12], [12, 16]]);
  assertEquals(bytes.length, 8 + headerLength + 16);
});

Deno.test("F16 widening is exact for zero, -0, subnormals, normals, inf and NaN", () => {
  const halves = [
    0x0000,
    0x8000,
    0x0001,
    0x03ff,
    0x0400,
    0x3c00,
    0xc000,
    0x7bff,
    0x7c00,
    0xfc00,
    0x7e00,
    0x3555,
  ];
  const expected = [
    0,
    -0,
    2 ** -24,
    1023 * 2 ** -24,
    2 ** -14,
    1,
    -2,
    65504,
    Infinity,
    -Infinity,
    NaN,
    0.333251953125,
  ];
  const file = rawFile({
    h: { dtype: "F16", shape: [halves.length], data_offsets: [0, 2 * halves.length] },
  }, u16Bytes(halves));
  const data = readSafetensors(file).tensors.get("h")!.data;
  expected.forEach((value, i) =>
    assert(Object.is(data[i], value), `half ${halves[i].toString(16)}: ${data[i]} != ${value}`)
  );
  assertEquals(new Uint32Array(data.buffer)[10], 0x7fc00000, "quiet NaN keeps its payload");
});

Deno.test("BF16 widening puts the bits in the top half of a float32 (subnormal, -0, inf exact)", () => {
  const bf16 = [0x0000, 0x8000, 0x0001, 0x3f80, 0xc0a0, 0x7f7f, 0x7f80, 0xff80, 0x7fc1];
  const file = rawFile(
    { b: { dtype: "BF16", shape: [3, 3], data_offsets: [0, 18] } },
    u16Bytes(bf16),
  );
  const { shape, data } = readSafetensors(file).tensors.get("b")!;
  assertEquals(shape, [3, 3]);
  assertEquals(bitsOf(data), bf16.map((b) => b * 65536));
  assert(Object.is(data[1], -0));
  assertEquals(data[2], 2 ** -133);
  assertEquals(data[4], -5);
  assertEquals(data[6], Infinity);
});

Deno.test("F64 tensors are read rounded to float32", () => {
  const values = new Float64Array([1 / 3, -1e300, 2.5]);
  const file = rawFile(
    { d: { dtype: "F64", shape: [3], data_offsets: [0, 24] } },
    new Uint8Array(values.buffer),
  );
  assertEquals([...readSafetensors(file).tensors.get("d")!.data], [
    Math.fround(1 / 3),
    -Infinity,
    2.5,
  ]);
});

Deno.test("F16 and BF16 writing round to nearest even and widen back to the rounded value", () => {
  const source = new Float32Array([
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    65520,
    2 ** -25,
    3 * 2 ** -25,
    1 + 2 ** -8,
    -0,
  ]);
  const tensors = new Map([["x", { shape: [source.length], data: source }]]);
  const f16 = readSafetensors(writeSafetensors(tensors, { dtype: "F16" })).tensors.get("x")!.data;
  assertEquals([...f16], [1, 1 + 2 ** -9, Infinity, 0, 2 ** -23, 1 + 2 ** -8, -0]);
  const bf16 = readSafetensors(writeSafetensors(tensors, { dtype: "BF16" })).tensors.get("x")!.data;
  assertEquals([...bf16], [1, 1, 65536, 2 ** -25, 3 * 2 ** -25, 1, -0]);
  assertEquals(f32BitsToF16Bits(0x7fc00000), 0x7e00);
  assertEquals(f32BitsToBf16Bits(0x3f808000), 0x3f80); // 1 + 2^-8: tie, to even
  assertEquals(f32BitsToBf16Bits(0x3f818000), 0x3f82); // 1 + 3*2^-8: tie, to even (up)
});

Deno.test("a file shorter than 8 bytes is reported as truncated", () => {
  assert(
    messageOf(() => readSafetensors(new Uint8Array(5), { file: "m.safetensors" })).startsWith(
      "m.safetensors: truncated",
    ),
  );
});

Deno.test("a header length past the end of the file is reported as truncated", () => {
  const file = rawFile(
    { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } },
    new Uint8Array(4),
  );
  const message = messageOf(() =>
    readSafetensors(file.subarray(0, 20), { file: "cut.safetensors" })
  );
  assert(
    /cut\.safetensors: truncated: the header claims \d+ bytes but only 12 follow/.test(message),
    message,
  );
});

Deno.test("a header that is not JSON is reported with the file name", () => {
  const message = messageOf(() =>
    readSafetensors(rawFile(null, undefined, '{"a": [1, 2'), { file: "bad.safetensors" })
  );
  assert(message.startsWith("bad.safetensors: header is not valid JSON"), message);
});

Deno.test("data offsets beyond the data section name the tensor", () => {
  const file = rawFile(
    { "w.weight": { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
    new Uint8Array(8),
  );
  const message = messageOf(() => readSafetensors(file));
  assert(
    message.includes(
      "tensor 'w.weight': data_offsets [0, 16] run past the end of the data section (8 bytes)",
    ),
    message,
  );
});

Deno.test("a byte range that does not match dtype and shape is refused", () => {
  const file = rawFile(
    { w: { dtype: "F16", shape: [3], data_offsets: [0, 8] } },
    new Uint8Array(8),
  );
  assert(
    messageOf(() => readSafetensors(file)).includes(
      "tensor 'w': 8 bytes of data for F16 shape [3] (expected 6)",
    ),
  );
});

Deno.test("malformed entries are refused: bad shape, bad offsets, non-string metadata", () => {
  const data = new Uint8Array(8);
  assert(
    messageOf(() =>
      readSafetensors(rawFile({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, data))
    ).includes('"shape"'),
  );
  assert(
    messageOf(() =>
      readSafetensors(rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, data))
    ).includes('"data_offsets"'),
  );
  assert(
    messageOf(() => readSafetensors(rawFile({ __metadata__: { n: 1 } }, data))).includes(
      "__metadata__",
    ),
  );
});

Deno.test("an unsupported dtype names the tensor and the dtype", () => {
  const file = rawFile(
    { "ids": { dtype: "I64", shape: [2], data_offsets: [0, 16] } },
    new Uint8Array(16),
  );
  const message = messageOf(() => readSafetensors(file, { file: "model.safetensors" }));
  assert(
    message.startsWith(
      "model.safetensors: tensor 'ids' has dtype I64, which cannot be read as float32",
    ),
    message,
  );
  // Skipping it with `include` reads the rest.
  assertEquals(readSafetensors(file, { include: (name) => name !== "ids" }).tensors.size, 0);
});

Deno.test("writeSafetensors refuses data whose length does not match the shape", () => {
  assert.throws(
    () => writeSafetensors(new Map([["w", { shape: [2, 2], data: new Float32Array(3) }]])),
    /tensor 'w' has 3 values for shape \[2,2\]/,
  );
});

Deno.test("a tensor named twice in the header is refused, not silently the last one", () => {
  const entry = (begin: number) =>
    `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${begin + 4}]}`;
  const text = `{"__metadata__":{"a":"{\\"w\\":1}"},"w":${entry(0)},"v":{"dtype":"F32",` +
    `"shape":[1],"data_offsets":[0,4]},"w":${entry(4)}}`;
  const message = messageOf(() => readSafetensors(rawFile(null, new Uint8Array(8), text)));
  assert(message.includes("tensor 'w' is named twice in the header"), message);
  // A name that appears again only inside a value (metadata) or nested object is not a duplicate.
  const once = `{"__metadata__":{"w":"x"},"w":${entry(0)}}`;
  assertEquals(readSafetensors(rawFile(null, new Uint8Array(4), once)).tensors.size, 1);
});
