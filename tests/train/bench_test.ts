/**
 * The bench's PyTorch figure: docs/bench/pytorch_dpo_step.py's JSON is checked, merged into the
 * row of the same step (name, pairs, T, no checkpointing) as pytorch_tokens_per_s, refused when
 * its parameter count says it is another model; the script's model has the bench's parameter
 * count (where torch is installed); bad --pytorch-json input exits 2 before anything runs.
 */

import { deepStrictEqual, match, strictEqual, throws } from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import {
  benchStep,
  mergePytorchStep,
  parsePytorchStep,
  type StepBenchConfig,
} from "../../src/train/bench.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TINY: StepBenchConfig = {
  name: "tiny d16 L1",
  hidden: 16,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  ffn: 24,
  vocab: 32,
  pairs: 2,
  seqLen: 8,
};

async function tinyRow(c: StepBenchConfig = TINY) {
  const backend = new CpuBackend("f32");
  try {
    return await benchStep(backend, c, { steps: 1 });
  } finally {
    backend.destroy();
  }
}

Deno.test("parsePytorchStep names the bad field", () => {
  const good = { name: "x", params: 10, pairs: 2, seq_len: 8, tokens_per_s: 5 };
  deepStrictEqual(parsePytorchStep(good), good);
  throws(() => parsePytorchStep([good]), /one JSON object/);
  throws(() => parsePytorchStep({ ...good, name: "" }), /"name"/);
  throws(() => parsePytorchStep({ ...good, params: 1.5 }), /"params"/);
  throws(() => parsePytorchStep({ ...good, seq_len: undefined }), /"seq_len"/);
  throws(() => parsePytorchStep({ ...good, tokens_per_s: -1 }), /"tokens_per_s"/);
  throws(() => parsePytorchStep({ ...good, tokens_per_s: "5" }), /"tokens_per_s"/);
});

Deno.test("the PyTorch figure lands in its row only, and another model is refused", async () => {
  const row = await tinyRow();
  const ckpt = await tinyRow({ ...TINY, gradientCheckpointing: true });
  const p = parsePytorchStep({
    name: TINY.name,
    params: row.params,
    pairs: 2,
    seq_len: 8,
    tokens_per_s: 1234.5,
    framework: "pytorch eager fp32",
    attention: "sdpa",
  });
  strictEqual(mergePytorchStep([ckpt], p), undefined); // checkpointing: another step
  strictEqual(mergePytorchStep([row], { ...p, pairs: 4 }), undefined);
  strictEqual(mergePytorchStep([ckpt, row], p), row);
  strictEqual(row.pytorch_tokens_per_s, 1234.5);
  deepStrictEqual(row.pytorch, { framework: "pytorch eager fp32", attention: "sdpa" });
  strictEqual(ckpt.pytorch_tokens_per_s, undefined);
  throws(() => mergePytorchStep([row], { ...p, params: row.params + 1 }), /not one model/);
});

/** The first python3 with torch: $PYTHON, the one on PATH, the system's. */
async function pythonWithTorch(): Promise<string | undefined> {
  for (const py of [Deno.env.get("PYTHON"), "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    const ok = await new Deno.Command(py, { args: ["-c", "import torch"], stderr: "null" })
      .output().then((o) => o.success, () => false);
    if (ok) return py;
  }
  return undefined;
}
const python = await pythonWithTorch();
if (!python) console.warn("ignoring the PyTorch script's test: no python3 with torch installed");

Deno.test({
  name: "docs/bench/pytorch_dpo_step.py builds the bench's model (same parameter count) on CPU",
  ignore: !python,
  fn: async () => {
    const row = await tinyRow();
    const out = await new Deno.Command(python!, {
      args: [
        `${ROOT}docs/bench/pytorch_dpo_step.py`,
        ...["--device", "cpu", "--name", TINY.name, "--hidden", "16", "--layers", "1"],
        ...["--heads", "2", "--kv-heads", "1", "--ffn", "24", "--vocab", "32", "--pairs", "2"],
        ...["--seq-len", "8", "--steps", "1", "--warmup", "1"],
      ],
    }).output();
    strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
    const p = parsePytorchStep(JSON.parse(new TextDecoder().decode(out.stdout)));
    strictEqual(p.params, row.params);
    strictEqual(p.tokens_per_step, row.tokens_per_step);
    strictEqual(p.tf32, false);
    strictEqual(mergePytorchStep([row], p), row);
  },
});

async function bench(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-webgpu", "-A", `${ROOT}tasks/bench.ts`, ...args],
    env: { DPO_SKIP_WEBGPU_PROBE: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("bench: a bad or unmatched --pytorch-json exits 2 before anything is measured", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/pytorch.json`;
    await Deno.writeTextFile(file, "{not json");
    let r = await bench("--device", "cpu", "--pytorch-json", file);
    strictEqual(r.code, 2);
    match(r.stderr, /--pytorch-json: .*pytorch\.json/);
    const p = { name: "SmolLM2-135M shape", params: 134515008, pairs: 4, seq_len: 256 };
    await Deno.writeTextFile(file, JSON.stringify({ ...p, tokens_per_s: 1 }));
    r = await bench("--device", "cpu", "--pytorch-json", file); // its row needs --large
    strictEqual(r.code, 2);
    match(r.stderr, /no bench row is "SmolLM2-135M shape" at 4 pairs x 256/);
    r = await bench("--device", "cpu", "--pytorch-json", `${dir}/missing.json`);
    strictEqual(r.code, 2);
    match(r.stderr, /cannot read/);
    r = await bench("--device", "cpu", "--large", "--large-rows", "9");
    strictEqual(r.code, 2);
    match(r.stderr, /--large-rows: "9"/);
    r = await bench("--device", "cpu", "--warmup", "0");
    strictEqual(r.code, 2);
    match(r.stderr, /--warmup/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
