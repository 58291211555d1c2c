/**
 * The reference cache as TRL's columns: export -> import -> DPO gives weights bit-identical to DPO
 * on the original cache (on the exported file itself and on the original with --logps), the
 * identity travels in the Parquet metadata / the JSONL sidecar, and foreign caches, missing rows
 * and non-finite values are refused.
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { type DpoOptions, runDpo } from "../../src/pipeline/dpo.ts";
import { exportCache, importCache, sidecarPath } from "../../src/pipeline/cache_export.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { IDENTITY_KEY } from "../../src/cache/trl_columns.ts";
import { parquetKeyValues, readRecords } from "../../src/data/read.ts";
import { rowsToParquet } from "../../src/data/write.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import { makeTinyWorld, store, type TinyWorld } from "./tiny_world.ts";

const cpu = () => new CpuBackend("f32");

function dpo(w: TinyWorld, data: string, refCache: string, outputDir: string): DpoOptions {
  return {
    model: w.base,
    data: { path: data },
    refCache,
    outputDir,
    beta: 0.1,
    optimizer: { lr: 1e-2, schedule: "constant" },
    loop: { batchSize: 4, maxSteps: 3, loggingSteps: 1 },
  };
}

const weightsHash = async (dir: string) =>
  await sha256Hex(await store.readFile(`${dir}/model.safetensors`));

Deno.test("export -> import -> dpo: weights bit-identical to dpo on the original cache", async () => {
  await using w = await makeTinyWorld(12);
  const cache = `${w.dir}/ref.bin`;
  await runPrecompute(store, cpu(), { model: w.base, data: { path: w.prefs }, output: cache });
  await runDpo(store, cpu(), dpo(w, w.prefs, cache, `${w.dir}/original`));
  const want = await weightsHash(`${w.dir}/original`);
  const original = await decodeCache(await store.readFile(cache), cache);

  for (const ext of ["parquet", "jsonl"]) {
    const exported = `${w.dir}/train.${ext}`;
    const result = await exportCache(store, { cache, data: { path: w.prefs }, output: exported });
    assert.deepEqual(result.files.map((f) => [f.rows, f.dropped]), [[12, 0]]);
    // The rows are the dataset's with TRL's two columns, float64, in dataset order.
    const rows = (await readRecords(await store.readFile(exported), exported)).map((r) =>
      r.value as Record<string, unknown>
    );
    const source = (await readRecords(await store.readFile(w.prefs), w.prefs)).map((r) => r.value);
    rows.forEach((row, i) => {
      const { ref_chosen_logps, ref_rejected_logps, ...rest } = row;
      assert.deepEqual(rest, source[i]);
      assert.equal(ref_chosen_logps, original.columns.chosen_logp[i]);
      assert.equal(ref_rejected_logps, original.columns.rejected_logp[i]);
    });
    const identity = ext === "parquet"
      ? JSON.parse(parquetKeyValues(await store.readFile(exported))[IDENTITY_KEY])
      : JSON.parse(await store.readText(sidecarPath(exported)))[IDENTITY_KEY];
    assert.equal(identity.payload_sha256, original.header.payload_sha256);
    assert.equal(identity.reference_fingerprint, original.header.reference_fingerprint);

    // Train on the exported file itself (extra columns are allowed, as in TRL).
    const imported = `${w.dir}/imported-${ext}.bin`;
    await importCache(store, { data: { path: exported }, model: w.base, output: imported });
    await runDpo(store, cpu(), dpo(w, exported, imported, `${w.dir}/on-export-${ext}`));
    assert.equal(await weightsHash(`${w.dir}/on-export-${ext}`), want, `${ext}: on the export`);

    // Or on the original, the columns matched by content from the exported file.
    const back = `${w.dir}/back-${ext}.bin`;
    await importCache(store, {
      data: { path: w.prefs },
      logps: [exported],
      model: w.base,
      output: back,
    });
    assert.deepEqual(await store.readFile(back), await store.readFile(cache), "byte for byte");
    await runDpo(store, cpu(), dpo(w, w.prefs, back, `${w.dir}/on-original-${ext}`));
    assert.equal(await weightsHash(`${w.dir}/on-original-${ext}`), want, `${ext}: on original`);
  }
});

Deno.test("export refuses a cache of other data; import refuses missing, non-finite or foreign columns", async () => {
  await using w = await makeTinyWorld(6);
  const cache = `${w.dir}/ref.bin`;
  await runPrecompute(store, cpu(), { model: w.base, data: { path: w.prefs }, output: cache });
  await assert.rejects(
    exportCache(store, { cache, data: { path: w.prefsEval }, output: `${w.dir}/x.parquet` }),
    (e: Error) => e.name === "CacheError" && /other data/.test(e.message),
  );
  await assert.rejects(
    exportCache(store, { cache, data: { path: w.prefs }, output: `${w.dir}/x.csv` }),
    /\.parquet or \.jsonl/,
  );
  const rows = (await readRecords(await store.readFile(w.prefs), w.prefs)).map((r) =>
    r.value as Record<string, unknown>
  );
  const write = async (name: string, data: Array<Record<string, unknown>>, meta = {}) => {
    const path = `${w.dir}/${name}.parquet`;
    await store.writeFileAtomic(path, rowsToParquet(data, meta).bytes);
    return path;
  };
  const full = rows.map((r) => ({ ...r, ref_chosen_logps: -1.5, ref_rejected_logps: -2.5 }));
  const cases: Array<[Array<Record<string, unknown>>, RegExp, Record<string, string>?]> = [
    [full.slice(0, 5), /:6: no row of .* has this pair/],
    [full.map((r, i) => (i === 2 ? { ...r, ref_rejected_logps: NaN } : r)), /:3: ref_rejected/],
    [rows, /:1: no ref_chosen_logps column/],
    [full, /do not fit this run:\n {2}- it was built with another tokenizer/, {
      [IDENTITY_KEY]: JSON.stringify({
        ...(await decodeCache(await store.readFile(cache), cache)).header,
        tokenizer_fingerprint: "0".repeat(64),
      }),
    }],
  ];
  for (const [i, [data, message, meta]] of cases.entries()) {
    const logps = await write(`case${i}`, data, meta);
    await assert.rejects(
      importCache(store, {
        data: { path: w.prefs },
        logps: [logps],
        model: w.base,
        output: `${w.dir}/c${i}.bin`,
      }),
      (e: Error) => {
        assert.equal(e.name, "CacheError", e.message);
        assert.match(e.message, message);
        return true;
      },
    );
    assert.equal(await store.exists(`${w.dir}/c${i}.bin`), false, "nothing written");
  }
  // Rows of another tool with the columns import as given.
  const ok = await write("ok", full);
  const result = await importCache(store, {
    data: { path: w.prefs },
    logps: [ok],
    model: w.base,
    output: `${w.dir}/ok.bin`,
  });
  assert.deepEqual(result, { examples: 6, unused: 0 });
  const imported = await decodeCache(await store.readFile(`${w.dir}/ok.bin`), "ok");
  assert.deepEqual(Array.from(imported.columns.chosen_logp), Array(6).fill(-1.5));
});
