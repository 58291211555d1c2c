/** Rows written back as JSON Lines or Parquet read back as the same values, TRL's types kept. */

import assert from "node:assert/strict";
import { readRecords } from "../../src/data/read.ts";
import { parquetKeyValues } from "../../src/data/read.ts";
import { rowsToJsonl, rowsToParquet } from "../../src/data/write.ts";
import { validateRecords } from "../../src/data/validate.ts";

const conversational = [
  {
    prompt: [{ role: "user", content: "the sky is" }],
    chosen: [{ role: "assistant", content: "blue" }],
    rejected: [{ role: "assistant", content: "red" }],
    ref_chosen_logps: -1.2345678901234567,
    ref_rejected_logps: -3,
  },
  {
    prompt: [{ role: "system", content: "be kind" }, { role: "user", content: "hi" }],
    chosen: [{ role: "assistant", content: "hello" }],
    rejected: [{ role: "assistant", content: "" }],
    ref_chosen_logps: -0.5,
    ref_rejected_logps: -1e-300,
  },
];
const tokenized = [
  {
    prompt: [1, 2, 3],
    chosen: [4, 2 ** 40],
    rejected: [5],
    ref_chosen_logps: -2,
    ref_rejected_logps: -4,
  },
  { prompt: [7], chosen: [], rejected: [8, 9], ref_chosen_logps: -1, ref_rejected_logps: -2.5 },
];
const standard = [
  { prompt: "a", chosen: "b", rejected: "c", score: 3, keep: true, note: null },
  { prompt: "d", chosen: "e", rejected: "f", score: 2.5, keep: false, note: "x" },
];

Deno.test("Parquet keeps messages as lists of structs, ids as int64 lists, float64 exactly", async () => {
  for (const rows of [conversational, tokenized, standard]) {
    const { bytes, jsonColumns } = rowsToParquet(rows, { "dpo.key": "value" });
    assert.deepEqual(jsonColumns, []);
    const back = (await readRecords(bytes, "x.parquet")).map((r) => r.value);
    assert.deepEqual(back, rows);
    assert.equal(parquetKeyValues(bytes)["dpo.key"], "value");
    const jsonl = (await readRecords(rowsToJsonl(rows), "x.jsonl")).map((r) => r.value);
    assert.deepEqual(jsonl, rows);
  }
  // Written conversational rows validate as TRL's conversational format again.
  const records = await readRecords(rowsToParquet(conversational).bytes, "x.parquet");
  assert.equal(validateRecords(records, "preference").format, "conversational_explicit");
});

Deno.test("a column with no native type here is written as JSON text and named", async () => {
  const rows = [{ prompt: "a", chosen: "b", rejected: "c", extra: { nested: [1, { x: 2 }] } }];
  const { bytes, jsonColumns } = rowsToParquet(rows);
  assert.deepEqual(jsonColumns, ["extra"]);
  const [back] = (await readRecords(bytes, "x.parquet")).map((r) => r.value as { extra: unknown });
  assert.deepEqual(JSON.parse(back.extra as string), rows[0].extra);
});
