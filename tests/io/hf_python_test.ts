/**
 * Round trip through an independent reader: files written by our safetensors writer (F32, F16,
 * BF16) are read back by tests/fixtures/make_hf_fixture.py, a byte-level reader that uses torch
 * for the float conversions. Needs `python3` with torch (Debian: apt-get install -y
 * python3-torch); without it the test is reported as ignored with the reason (and fails where CI is set) (the committed-fixture tests in
 * hf_fixture_test.ts cover the same ground with Deno only). Tolerance: none, bit-exact.
 */

import assert from "node:assert/strict";
import { needsTest } from "../helpers.ts";
import { type TensorData, type WritableDtype, writeSafetensors } from "../../src/io/safetensors.ts";

const SCRIPT = new URL("../fixtures/make_hf_fixture.py", import.meta.url).pathname;

/** The first python3 on PATH (or Debian's, which python3-torch installs into) that imports torch. */
async function findTorchPython(): Promise<string | undefined> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    try {
      const { success } = await new Deno.Command(python, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (success) return python;
    } catch {
      // not installed under this name
    }
  }
  return undefined;
}

const python = await findTorchPython();
/** Why the test cannot run; CI installs torch (.ci/run), so there it fails instead. */
const torchMissing = python
  ? undefined
  : "no python3 with torch (apt-get install -y python3-torch to run it)";

/** Deterministic values in [-1, 1) (a linear congruential generator; only variety matters here). */
function randomArray(n: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

/** Edge values plus random ones over several magnitudes, so rounding is exercised. */
function sampleTensors(): Map<string, TensorData> {
  const edges = new Float32Array([
    0,
    -0,
    1,
    65504,
    65520,
    1e-8,
    3e-8,
    2 ** -24,
    1 + 2 ** -11,
    3.4e38,
    -Infinity,
    1e-40,
  ]);
  const wide = randomArray(60, 11);
  wide.forEach((v, i) => (wide[i] = v * 10 ** ((i % 12) - 6)));
  return new Map<string, TensorData>([
    ["model.layers.0.mlp.up_proj.weight", { shape: [6, 10], data: wide }],
    ["model.norm.weight", { shape: [12], data: edges }],
    ["0", { shape: [2, 3], data: randomArray(6, 5) }],
    ["lm_head.weight", { shape: [0, 3], data: new Float32Array(0) }],
  ]);
}

for (const dtype of ["F32", "F16", "BF16"] as WritableDtype[]) {
  needsTest(torchMissing, {
    name:
      `a ${dtype} file written by writeSafetensors reads back in the torch reader as torch's own conversion`,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "hf_python_test_" });
      try {
        const tensors = sampleTensors();
        await Deno.writeFile(`${dir}/model.safetensors`, writeSafetensors(tensors, { dtype }));
        const expected: Record<string, unknown> = {};
        for (const [name, { shape, data }] of tensors) {
          expected[name] = {
            dtype,
            shape,
            f32_bits: [...new Uint32Array(data.buffer, data.byteOffset, data.length)],
          };
        }
        await Deno.writeTextFile(`${dir}/expected.json`, JSON.stringify(expected));
        const result = await new Deno.Command(python!, {
          args: [SCRIPT, "check", `${dir}/model.safetensors`, `${dir}/expected.json`],
        }).output();
        const output = new TextDecoder().decode(result.stdout) +
          new TextDecoder().decode(result.stderr);
        assert.ok(result.success, `python reader disagrees:\n${output}`);
        assert.match(output, /^ok: 4 tensors match torch/);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
