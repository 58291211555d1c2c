// The matmul tuner and the kernel flags: a tuning document written to a file and read back is
// reused without timing again; a forced-hardware context notes a new shape, tunes it at finish
// and then runs the tuned candidate with the bits of the software layout; flag beats environment
// beats default for the layouts and the cache path.
import { deepStrictEqual as assertEquals, strictEqual, throws } from "node:assert/strict";
import { gpuTest, randomArray } from "../helpers.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import { memoryStore, Tuner } from "../../src/gpu/tuner.ts";
import { chooseMatmul, matmulCandidateName, matmulShapeKey } from "../../src/gpu/matmul_policy.ts";
import { fileStore, layoutsOf, tuningCachePath } from "../../tasks/_kernels.ts";

Deno.test("kernel layouts: the flag beats the environment, which beats auto", () => {
  const env = { DPO_KERNEL_LAYOUTS: "hardware" };
  strictEqual(layoutsOf({}, {}), "auto");
  strictEqual(layoutsOf({}, env), "hardware");
  strictEqual(layoutsOf({ kernelLayouts: "software" }, env), "software");
  throws(() => layoutsOf({}, { DPO_KERNEL_LAYOUTS: "fast" }), /DPO_KERNEL_LAYOUTS/);
  throws(() => layoutsOf({ kernelLayouts: "fast" }, {}), /--kernel-layouts/);
});

Deno.test("tuning cache path: flag, then DPO_TUNING_CACHE, then XDG_CACHE_HOME, then HOME", () => {
  const env = { DPO_TUNING_CACHE: "/e.json", XDG_CACHE_HOME: "/x", HOME: "/h" };
  strictEqual(tuningCachePath({ tuningCache: "/f.json" }, env), "/f.json");
  strictEqual(tuningCachePath({}, env), "/e.json");
  strictEqual(
    tuningCachePath({}, { XDG_CACHE_HOME: "/x", HOME: "/h" }),
    "/x/dpo-webgpu/tuning.json",
  );
  strictEqual(tuningCachePath({}, { HOME: "/h" }), "/h/.cache/dpo-webgpu/tuning.json");
});

gpuTest(
  "the tuner times a noted shape at finish, saves it, and a reopened cache reuses it",
  async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/sub/tuning.json`;
    const tuner = await Tuner.open(fileStore(path));
    const gpu = await GpuBackend.create({ layouts: "hardware", tuner });
    const soft = await GpuBackend.create({ layouts: "software" });
    try {
      const [m, n, k] = [37, 29, 21];
      const key = matmulShapeKey(m, n, k, false, true);
      const a = randomArray(m * k, 5), b = randomArray(k * n, 6);
      const runOn = async (g: GpuBackend) => {
        const out = g.ctx.alloc("activations", m * n);
        const ta = g.ctx.alloc("activations", m * k), tb = g.ctx.alloc("activations", k * n);
        g.ctx.write(ta, a);
        g.ctx.write(tb, b);
        g.ops.matmul(out, ta, tb, m, n, k, { transB: true });
        await g.ctx.finish();
        return new Uint32Array(await g.ctx.read(out));
      };
      strictEqual(tuner.table(gpu.ctx)[key], undefined);
      const first = await runOn(gpu); // notes the shape; finish tunes it
      const tuned = tuner.table(gpu.ctx)[key];
      strictEqual(typeof tuned?.choice, "string");
      strictEqual(chooseMatmul(gpu.ctx, m, n, k, false, true) !== undefined, true);
      strictEqual(matmulCandidateName(chooseMatmul(gpu.ctx, m, n, k, false, true)!), tuned.choice);
      const second = await runOn(gpu); // the tuned candidate
      const software = await runOn(soft);
      assertEquals(first, software);
      assertEquals(second, software);
      // Reopened from the file: the same choice, nothing pending, no timing.
      const again = await Tuner.open(fileStore(path));
      assertEquals(again.table(gpu.ctx)[key], tuned);
      strictEqual(again.choose(gpu.ctx, key), tuned.choice);
      const before = (await Deno.stat(path)).mtime?.getTime();
      await again.flush(gpu.ctx); // nothing pending: the file is not rewritten
      strictEqual((await Deno.stat(path)).mtime?.getTime(), before);
    } finally {
      gpu.destroy();
      soft.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

gpuTest("one tune call times several shapes (each on its own scratch context)", async () => {
  const tuner = await Tuner.open(memoryStore());
  const gpu = await GpuBackend.create({ layouts: "hardware", tuner });
  try {
    const keys = ["NT 19x13x11", "NN 19x11x13", "TN 13x11x19"];
    const table = await tuner.tune(gpu.ctx, keys);
    assertEquals(Object.keys(table), keys);
    for (const key of keys) {
      strictEqual(typeof table[key].choice, "string");
      strictEqual(Object.keys(table[key].ms).length > 0, true);
      assertEquals(tuner.table(gpu.ctx)[key], table[key]);
    }
  } finally {
    gpu.destroy();
  }
});
