/**
 * Checks against fixtures written by PyTorch (tests/fixtures/make_hf_fixture.py): a sharded
 * checkpoint with F16, BF16 and F32 tensors converted by torch, and torch's f32 -> f16/bf16
 * rounding of edge cases. Tolerance: none, every value is compared bit for bit (NaN by NaN-ness,
 * since torch builds differ in the NaN bit pattern they produce for bf16).
 */

import assert from "node:assert/strict";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { loadCheckpoint } from "../../src/io/checkpoint.ts";
import { readSafetensors, type TensorData, writeSafetensors } from "../../src/io/safetensors.ts";
import { f32BitsToBf16Bits, f32BitsToF16Bits } from "../../src/io/half.ts";
import { configFromHf, parameterShapes } from "../../src/model/config.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const SHARDED = `${FIXTURES}hf_sharded`;

interface Expected {
  torch_version: string;
  tensors: Record<string, { dtype: string; shape: number[]; f32_bits: number[] }>;
  rounding: { f32_bits: number[]; f16_bits: number[]; bf16_bits: number[] };
}
const expected: Expected = JSON.parse(
  await Deno.readTextFile(`${FIXTURES}hf_sharded_expected.json`),
);

function bitsOf(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

function floatOfBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

Deno.test("the sharded torch checkpoint (F16, BF16, F32 shards) loads bit-exactly", async () => {
  const { config, tensors } = await loadCheckpoint(new DenoFileStore(), SHARDED);
  assert.equal(config.model_type, "llama");
  assert.deepStrictEqual([...tensors.keys()].sort(), Object.keys(expected.tensors).sort());
  for (const [name, want] of Object.entries(expected.tensors)) {
    const got = tensors.get(name)!;
    assert.deepStrictEqual(got.shape, want.shape, name);
    assert.deepStrictEqual(bitsOf(got.data), want.f32_bits, `${name} (${want.dtype})`);
  }
  // Spot checks of the widened edge values, readable without the JSON.
  const f16Edges = tensors.get("model.layers.0.input_layernorm.weight")!.data;
  assert.ok(Object.is(f16Edges[1], -0));
  assert.equal(f16Edges[2], 2 ** -24);
  assert.equal(f16Edges[4], 65504);
  assert.equal(f16Edges[5], Infinity);
  assert.ok(Number.isNaN(f16Edges[7]));
  const bf16Edges = tensors.get("model.layers.1.input_layernorm.weight")!.data;
  assert.equal(bf16Edges[1], 2 ** -133);
});

Deno.test("the torch checkpoint holds exactly the tensors parameterShapes lists for its config", async () => {
  const { config, tensors } = await loadCheckpoint(new DenoFileStore(), SHARDED);
  const shapes = parameterShapes(configFromHf(config));
  assert.deepStrictEqual(shapes.map((s) => s.name).sort(), [...tensors.keys()].sort());
  for (const { name, shape } of shapes) {
    assert.deepStrictEqual(tensors.get(name)!.shape, shape, name);
  }
});

Deno.test("f32 -> f16 and f32 -> bf16 narrowing matches torch's .half() and .bfloat16()", () => {
  const { f32_bits, f16_bits, bf16_bits } = expected.rounding;
  f32_bits.forEach((bits, i) => {
    const what = `input ${floatOfBits(bits)} (0x${bits.toString(16)})`;
    if (Number.isNaN(floatOfBits(bits))) {
      assert.equal(f32BitsToF16Bits(bits) & 0x7c00, 0x7c00, `${what}: NaN exponent`);
      assert.notEqual(f32BitsToF16Bits(bits) & 0x3ff, 0, `${what}: NaN mantissa`);
      assert.equal((f32BitsToBf16Bits(bits) & 0x7fff) > 0x7f80, true, `${what}: bf16 NaN`);
      return;
    }
    assert.equal(f32BitsToF16Bits(bits), f16_bits[i], `${what} to f16`);
    assert.equal(f32BitsToBf16Bits(bits), bf16_bits[i], `${what} to bf16`);
  });
});

Deno.test("writing the F16 shard's tensors with ours reproduces torch's shard byte for byte", async () => {
  const shardPath = `${SHARDED}/model-00001-of-00002.safetensors`;
  const torchBytes = await Deno.readFile(shardPath);
  const { tensors } = readSafetensors(torchBytes, { file: shardPath });
  const widened = new Map<string, TensorData>();
  for (const [name, tensor] of tensors) widened.set(name, tensor);
  assert.deepStrictEqual(writeSafetensors(widened, { dtype: "F16" }), torchBytes);
});
