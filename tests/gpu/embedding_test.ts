// WGSL embedding against the CPU f32 reference. The forward is a copy (exact); the backward sums
// each id's positions in the same order on both sides, but the CPU rounds once at the end and
// the GPU after every addition, so it is held to atol 1e-6, rtol 1e-5.
import { tokenIndex } from "../../src/backend/mod.ts";
import * as ref from "../../src/cpu/embedding.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

const N = 26, C = 100, V = 97;

// Repeated ids (id 5 six times, id 96 the last row), many ids unused.
const ids = Int32Array.from({ length: N }, (_, p) => p % 4 === 0 ? 5 : (p * 37) % V);
ids[N - 1] = V - 1;

gpuTest("embeddingForward matches the CPU reference", async (gpu) => {
  const table = randomArray(V * C, 1);
  const expected = new Float32Array(N * C);
  ref.embeddingForward(expected, ids, table, N, C);
  const out = gpu.alloc("activations", N * C);
  gpu.ops.embeddingForward(out, upload(gpu, ids, "i32"), upload(gpu, table), N, C);
  assertClose(await gpu.read(out), expected, { atol: 0, rtol: 0, label: "out" });
});

gpuTest("embeddingBackward accumulates repeated ids like the CPU reference", async (gpu) => {
  const dOut = randomArray(N * C, 2);
  const prior = randomArray(V * C, 3);
  const { order, offsets } = tokenIndex(ids, V);
  const expected = Float32Array.from(prior);
  ref.embeddingBackward(expected, dOut, order, offsets, V, C);
  const dTable = upload(gpu, prior);
  const tOrder = upload(gpu, order, "i32"), tOffsets = upload(gpu, offsets, "i32");
  const tdOut = upload(gpu, dOut);
  gpu.ops.embeddingBackward(dTable, tdOut, tOrder, tOffsets, V, C);
  const first = await gpu.read(dTable);
  assertClose(first, expected, { atol: 1e-6, rtol: 1e-5, label: "dTable" });

  // Bit-reproducible: the same inputs give the same bits.
  gpu.write(dTable, prior);
  gpu.ops.embeddingBackward(dTable, tdOut, tOrder, tOffsets, V, C);
  assertClose(await gpu.read(dTable), first, { atol: 0, rtol: 0, label: "rerun" });
});
