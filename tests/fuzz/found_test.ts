/**
 * The bugs the fuzzer found, each pinned by its smallest input: every one now ends in an input
 * error naming the file (exit 2 on the command line) instead of a crash, a hang or an unhandled
 * rejection.
 */

import assert from "node:assert/strict";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { decodeCache } from "../../src/cache/reference_cache.ts";
import { readRecords } from "../../src/data/read.ts";
import { loadTokenizer } from "../../src/data/tokenizer.ts";
import { KINDS, seedFiles } from "./kinds.ts";
import { mutate } from "./mutate.ts";

const files = await seedFiles();
const kind = (name: string) => KINDS.find((k) => k.name === name)!;

Deno.test("a cache header without columns is a CacheError, not a TypeError", async () => {
  const header = new TextEncoder().encode(JSON.stringify({ format_version: 1, start: 0, end: 1 }));
  const bytes = new Uint8Array(12 + header.length);
  bytes.set(new TextEncoder().encode("DPOREFC1"));
  new DataView(bytes.buffer).setUint32(8, header.length, true);
  bytes.set(header, 12);
  await assert.rejects(() => decodeCache(bytes, "c.bin"), (e: Error) => {
    assert.equal(e.name, "CacheError");
    assert.match(e.message, /c\.bin: header "columns" must be a list/);
    return true;
  });
});

Deno.test("a tokenizer.json token id of 10^9 is refused at once, naming the token", async () => {
  const json = JSON.parse(new TextDecoder().decode(files["m/tokenizer.json"]));
  json.model.vocab.hello = 1e9;
  const store = new MemoryFileStore({ ...files, "m/tokenizer.json": JSON.stringify(json) });
  const start = performance.now();
  await assert.rejects(
    () => loadTokenizer(store, "m"),
    /m\/tokenizer\.json: model\.vocab\["hello"\] is 1000000000/,
  );
  assert.ok(performance.now() - start < 2000);
});

Deno.test("a Parquet column chunk outside the schema is invalid Parquet, no unhandled rejection", async () => {
  // Seed 8 renames the column "rejected" in the footer's chunk metadata only.
  const records = await readRecords(mutate(files["d/prefs.parquet"], "binary", 8), "p.parquet");
  assert.match(records[0].issue?.problem ?? "", /invalid Parquet \(column chunk of "rejegted"/);
  await new Promise((r) => setTimeout(r, 50)); // an escaped rejection would fail this test
});

Deno.test("a JSON array with a stray closing brace ends the scan instead of looping", async () => {
  const text = '[{"prompt":"a"}}, {"prompt":"b"}]';
  const records = await readRecords(new TextEncoder().encode(text), "a.json");
  assert.match(records.at(-1)!.issue!.problem, /unexpected "}" in the array/);
});

Deno.test("a config with fewer layers than the weights is a ConfigError naming num_hidden_layers", async () => {
  const config = JSON.parse(new TextDecoder().decode(files["m/config.json"]));
  config.num_hidden_layers = 1;
  const store = new MemoryFileStore({ ...files, "m/config.json": JSON.stringify(config) });
  await assert.rejects(() => kind("config.json").load(store), (e: Error) => {
    assert.equal(e.name, "ConfigError");
    assert.match(e.message, /num_hidden_layers: 1, but m\/model\.safetensors holds 2 layers/);
    return true;
  });
});
