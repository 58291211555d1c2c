// The tuner beyond the matmul: the flash attention tiles and the fused LM head's chunk are noted
// where a run first asks for them, timed at the next finish (every candidate), and the tuned
// choice is what the next call gets; a stored choice is honoured, an unknown one falls back to
// the built-in; attention's output keeps its bits across the switch; `deno task tune` takes every
// family's keys and refuses a malformed one with exit code 2.
import {
  deepStrictEqual as assertEquals,
  notStrictEqual,
  rejects,
  strictEqual,
} from "node:assert/strict";
import { gpuMissing, gpuTest, randomArray, upload } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { memoryStore, Tuner } from "../../src/gpu/tuner.ts";
import { TUNED_FAMILIES } from "../../src/gpu/tuning_families.ts";
import * as attention from "../../src/gpu/kernels/attention.ts";
import { FLASH_CANDIDATES, FLASH_TILING } from "../../src/gpu/kernels/attention_flash.ts";
import { lmHeadCandidates, lmHeadPlan, lmHeadTuningKey } from "../../src/gpu/lm_head.ts";
import { adapterKeyOf } from "../../src/gpu/tuner.ts";

const SHAPE: attention.AttentionShape = [2, 19, 4, 2, 8];

Deno.test("every family owns its example key and no other family's", () => {
  for (const family of TUNED_FAMILIES) {
    for (const other of TUNED_FAMILIES) {
      strictEqual(family.owns(other.example), family === other, `${family.name} / ${other.name}`);
    }
  }
  strictEqual(TUNED_FAMILIES.some((f) => f.owns("attention 2x3x4")), false);
  strictEqual(TUNED_FAMILIES.some((f) => f.owns("lm_head 8x600x12 chunk<=300")), false);
});

gpuTest("attention tiles: noted, timed at finish, then chosen, with the same bits", async () => {
  const tuner = await Tuner.open(memoryStore(), { targetMs: 1 });
  const gpu = await GpuBackend.create({ layouts: "hardware", tuner });
  try {
    const [B, T, H, Hkv, D] = SHAPE;
    const q = upload(gpu, randomArray(B * T * H * D, 1));
    const k = upload(gpu, randomArray(B * T * Hkv * D, 2));
    const v = upload(gpu, randomArray(B * T * Hkv * D, 3));
    const forward = async () => {
      const out = gpu.alloc("activations", B * T * H * D);
      const stats = gpu.alloc("activations", B * H * T * 2);
      attention.attentionForward(gpu.ctx, out, stats, q, k, v, B, T, H, Hkv, D);
      await gpu.ctx.finish();
      return new Uint32Array(((await gpu.read(out)) as Float32Array).buffer);
    };
    const key = attention.attentionShapeKey(SHAPE);
    strictEqual(tuner.table(gpu.ctx)[key], undefined);
    const before = await forward(); // built-in tiles; the finish tunes the shape
    const tuned = tuner.table(gpu.ctx)[key];
    assertEquals(Object.keys(tuned.ms).sort(), FLASH_CANDIDATES.map(attention.flashName).sort());
    strictEqual(
      attention.flashName(attention.attentionTiling(gpu.ctx, SHAPE) as never),
      tuned.choice,
    );
    assertEquals(await forward(), before);
  } finally {
    gpu.destroy();
  }
});

/** A tuner whose document already holds `choice` for `key` on the shared adapter. */
async function storedChoice(gpu: GpuBackend, key: string, choice: string) {
  const store = memoryStore();
  store.text = JSON.stringify({
    version: 1,
    adapters: { [adapterKeyOf(gpu.ctx)]: { [key]: { choice, ms: { [choice]: 1 } } } },
  });
  return await Tuner.open(store);
}

gpuTest(
  "a stored attention choice is used; an unknown one falls back to the built-in",
  async (shared) => {
    const key = attention.attentionShapeKey(SHAPE);
    const other = FLASH_CANDIDATES.find((t) => t !== FLASH_TILING)!;
    for (
      const [choice, want] of [[attention.flashName(other), other], [
        "flash_r7_k3",
        FLASH_TILING,
      ]] as const
    ) {
      const tuner = await storedChoice(shared, key, choice);
      const gpu = await GpuBackend.create({ layouts: "hardware", tuner });
      try {
        assertEquals(attention.attentionTiling(gpu.ctx, SHAPE), want);
      } finally {
        gpu.destroy();
      }
    }
  },
);

gpuTest(
  "LM head chunk: the plan notes its key, the finish times every candidate, the next plan takes the choice",
  async () => {
    const [N, V, C, budget] = [24, 1000, 12, 24 * 1024];
    const tuner = await Tuner.open(memoryStore(), { targetMs: 1 });
    const gpu = await GpuBackend.create({ layouts: "hardware", tuner });
    try {
      const key = lmHeadTuningKey(gpu.ctx, N, V, C, budget)!;
      strictEqual(key, "lm_head 24x1000x12 chunk<=1024");
      strictEqual(lmHeadPlan(gpu.ctx, N, V, C, budget)!.vocabChunk, 1024); // built-in; noted
      await gpu.ctx.finish();
      const tuned = tuner.table(gpu.ctx)[key];
      assertEquals(Object.keys(tuned.ms), lmHeadCandidates(gpu.ctx, N, C, 1024).map(String));
      assertEquals(Object.keys(tuned.ms), ["256", "512", "1024"]);
      strictEqual(lmHeadPlan(gpu.ctx, N, V, C, budget)!.vocabChunk, Number(tuned.choice));
    } finally {
      gpu.destroy();
    }
  },
);

gpuTest(
  "LM head chunk: a stored choice is used, and never one wider than the budget allows",
  async (shared) => {
    const [N, V, C] = [24, 1000, 12];
    const key = "lm_head 24x1000x12 chunk<=1024";
    for (
      const [choice, budget, want] of [["256", 24 * 1024, 256], ["2048", 24 * 1024, 1024]] as const
    ) {
      const gpu = await GpuBackend.create({
        layouts: "hardware",
        tuner: await storedChoice(shared, key, choice),
      });
      try {
        const plan = lmHeadPlan(gpu.ctx, N, V, C, budget)!;
        strictEqual(plan.vocabChunk, want);
        strictEqual(plan.scratch.trainable, N * want);
      } finally {
        gpu.destroy();
      }
    }
    // One candidate only (the budget allows 256 columns): nothing to tune.
    strictEqual(lmHeadTuningKey(shared.ctx, N, V, C, N * 256), undefined);
  },
);

gpuTest("tune() refuses a key no family owns", async () => {
  const tuner = await Tuner.open(memoryStore());
  const gpu = await GpuBackend.create({ layouts: "hardware" });
  try {
    await rejects(
      () => tuner.tune(gpu.ctx, ["conv 3x3"]),
      /no tuned kernel has the shape key "conv 3x3"/,
    );
  } finally {
    gpu.destroy();
  }
});

const task = (args: string[]) =>
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-webgpu", "tasks/tune.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();

Deno.test({
  name: "deno task tune: every family's keys, a JSON table, and exit code 2 for a bad key",
  ignore: gpuMissing !== undefined,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const keys = ["NT 9x7x5", "attention 2x5x2x1x8", "lm_head 7x600x12 chunk<=512"];
      const ok = await task([
        "--shapes",
        keys.join(","),
        "--json",
        "--tuning-cache",
        `${dir}/t.json`,
      ]);
      const err = new TextDecoder().decode(ok.stderr);
      strictEqual(ok.code, 0, err);
      const out = JSON.parse(new TextDecoder().decode(ok.stdout));
      assertEquals(Object.keys(out.table), keys);
      for (const key of keys) notStrictEqual(out.table[key].ms[out.table[key].choice], undefined);
      const saved = JSON.parse(await Deno.readTextFile(`${dir}/t.json`));
      assertEquals(Object.keys(Object.values(saved.adapters)[0] as object), keys);
      const bad = await task(["--shapes", "attention 2x5", "--tuning-cache", `${dir}/u.json`]);
      strictEqual(bad.code, 2);
      const message = new TextDecoder().decode(bad.stderr);
      strictEqual(message.includes('"attention 2x5" is not a shape key'), true, message);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
