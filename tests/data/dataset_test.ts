import assert from "node:assert/strict";
import { parquetWriteBuffer } from "hyparquet-writer";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { fingerprintDataset, loadDataset, loadPreferenceDataset } from "../../src/data/dataset.ts";
import { formatIssue, ValidationError } from "../../src/data/issues.ts";
import { assertRejects } from "../helpers.ts";
import { tokenizePreference, tokenizeSft, tokenizeUnpaired } from "../../src/data/tokenize.ts";
import type { DatasetKind } from "../../src/data/types.ts";
import { fixtureTokenizer, jsonl } from "./helpers.ts";

const user = (content: string) => ({ role: "user", content });
const bot = (content: string) => ({ role: "assistant", content });

/** Two rows of every format, with the kind that reads it. */
const formats: Array<{ format: string; kind: DatasetKind; rows: Record<string, unknown>[] }> = [
  {
    format: "standard_explicit",
    kind: "preference",
    rows: [{ prompt: "the sky is", chosen: " blue", rejected: " green" }, {
      prompt: "hi",
      chosen: " hello",
      rejected: " no",
    }],
  },
  {
    format: "standard_implicit",
    kind: "preference",
    rows: [{ chosen: "the sky is blue", rejected: "the sky is green" }, {
      chosen: "hi hello",
      rejected: "hi no",
    }],
  },
  {
    format: "conversational_explicit",
    kind: "preference",
    rows: [
      {
        prompt: [user("what color is the sky?")],
        chosen: [bot("blue.")],
        rejected: [bot("green.")],
      },
      { prompt: [user("hi")], chosen: [bot("hello")], rejected: [bot("no")] },
    ],
  },
  {
    format: "conversational_implicit",
    kind: "preference",
    rows: [
      {
        chosen: [user("what color is the sky?"), bot("blue.")],
        rejected: [user("what color is the sky?"), bot("red.")],
      },
      { chosen: [user("hi"), bot("hello")], rejected: [user("hi"), bot("no")] },
    ],
  },
  {
    format: "pretokenized",
    kind: "preference",
    rows: [
      { prompt_input_ids: [1, 8, 9, 10], chosen_input_ids: [11, 2], rejected_input_ids: [12, 2] },
      { prompt_input_ids: [1, 18], chosen_input_ids: [17], rejected_input_ids: [24, 2] },
    ],
  },
  { format: "text", kind: "sft", rows: [{ text: "the sky is blue." }, { text: "hello world" }] },
  {
    format: "prompt_completion",
    kind: "sft",
    rows: [{ prompt: "the sky is", completion: " blue" }, { prompt: "hi", completion: " hello" }],
  },
  {
    format: "conversational_prompt_completion",
    kind: "sft",
    rows: [{ prompt: [user("hi")], completion: [bot("hello")] }, {
      prompt: [user("a")],
      completion: [bot("b")],
    }],
  },
  {
    format: "messages",
    kind: "sft",
    rows: [{ messages: [user("hi"), bot("hello")] }, {
      messages: [user("what color is the sky?"), bot("blue.")],
    }],
  },
  {
    format: "standard_unpaired",
    kind: "unpaired",
    rows: [{ prompt: "the sky is", completion: " blue", label: true }, {
      prompt: "the sky is",
      completion: " red",
      label: false,
    }],
  },
  {
    format: "conversational_unpaired",
    kind: "unpaired",
    rows: [
      { prompt: [user("hi")], completion: [bot("hello")], label: true },
      { prompt: [user("hi")], completion: [bot("no")], label: false },
    ],
  },
];

/** A Parquet file with one column per field of the rows (types guessed by hyparquet-writer). */
function parquet(rows: Record<string, unknown>[]): Uint8Array {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const columnData = names.map((name) => ({ name, data: rows.map((r) => r[name] ?? null) }));
  return new Uint8Array(parquetWriteBuffer({ columnData }));
}

for (const { format, kind, rows } of formats) {
  Deno.test(`${format} rows load the same from JSONL, a JSON array and Parquet, and tokenize`, async () => {
    const store = new MemoryFileStore({
      "d.jsonl": jsonl(rows),
      "d.json": JSON.stringify(rows, null, 2),
      "d.parquet": parquet(rows),
    });
    const fromJsonl = await loadDataset(store, "d.jsonl", kind);
    const fromJson = await loadDataset(store, "d.json", kind);
    const fromParquet = await loadDataset(store, "d.parquet", kind);
    assert.equal(fromJsonl.format, format);
    assert.equal(fromParquet.format, format);
    assert.equal(fromJson.format, format);
    const strip = (r: { file: string; line: number }) => ({ ...r, file: "", line: 0 });
    assert.deepEqual(fromParquet.rows.map(strip), fromJsonl.rows.map(strip));
    assert.deepEqual(fromParquet.rows.map((r) => r.line), [1, 2]);
    assert.equal(fromJson.rows[0].line, 2);
    assert.ok(fromJson.rows[1].line > 2);
    const tokenizer = await fixtureTokenizer();
    const tokenized = kind === "preference"
      ? tokenizePreference(fromParquet.rows as never, tokenizer)
      : kind === "sft"
      ? tokenizeSft(fromParquet.rows as never, tokenizer)
      : tokenizeUnpaired(fromParquet.rows as never, tokenizer);
    assert.equal(tokenized.examples.length, 2);
    assert.equal(tokenized.report.kept, 2);
  });
}

Deno.test("implicit Parquet rows tokenize like their explicit form", async () => {
  const tokenizer = await fixtureTokenizer();
  const store = new MemoryFileStore({
    "i.parquet": parquet(formats[1].rows),
    "e.jsonl": jsonl(formats[0].rows),
  });
  const implicit = tokenizePreference(
    (await loadPreferenceDataset(store, "i.parquet")).rows,
    tokenizer,
  );
  const explicit = tokenizePreference(
    (await loadPreferenceDataset(store, "e.jsonl")).rows,
    tokenizer,
  );
  const ids = (
    e: { promptIds: number[]; chosenIds: number[]; rejectedIds: number[] },
  ) => [e.promptIds, e.chosenIds, e.rejectedIds];
  assert.deepEqual(implicit.examples.map(ids), explicit.examples.map(ids));
});

Deno.test("a Parquet string that is not UTF-8 is reported with its row and field", async () => {
  const bad = new Uint8Array([0x62, 0xff, 0x6c]);
  const good = new TextEncoder().encode(" blue");
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "prompt", data: ["the sky is", "the sky is"], type: "STRING" },
      { name: "chosen", data: [good, bad], type: "BYTE_ARRAY" },
      { name: "rejected", data: [" green", " red"], type: "STRING" },
    ],
  });
  const store = new MemoryFileStore({ "u.parquet": new Uint8Array(buffer) });
  const error = await assertRejects(
    loadPreferenceDataset(store, "u.parquet"),
    ValidationError,
    "u.parquet:2: chosen: invalid UTF-8",
  );
  assert.deepEqual(error.issues.map(formatIssue), ["u.parquet:2: chosen: invalid UTF-8"]);
});

Deno.test("a folder of shards is read in order, by named split", async () => {
  const row = (word: string) => ({ prompt: "the sky is", chosen: ` ${word}`, rejected: " red" });
  const store = new MemoryFileStore({
    "ds/README.md": "# card",
    "ds/data/train-00000-of-00002.parquet": parquet([row("blue"), row("green")]),
    "ds/data/train-00001-of-00002.jsonl": jsonl([row("a")]),
    "ds/data/test-00000-of-00001.jsonl": jsonl([row("b")]),
  });
  const train = await loadPreferenceDataset(store, "ds");
  assert.deepEqual(train.files, [
    "ds/data/train-00000-of-00002.parquet",
    "ds/data/train-00001-of-00002.jsonl",
  ]);
  assert.deepEqual(train.rows.map((r) => r.kind === "standard" && r.chosen), [
    " blue",
    " green",
    " a",
  ]);
  const test = await loadPreferenceDataset(store, "ds", { split: "test" });
  assert.deepEqual(test.rows.map((r) => `${r.file}:${r.line}`), [
    "ds/data/test-00000-of-00001.jsonl:1",
  ]);
  await assert.rejects(
    loadPreferenceDataset(store, "ds", { split: "validation" }),
    /no files for split "validation"/,
  );
  await assert.rejects(
    loadPreferenceDataset(store, "ds/data/test-00000-of-00001.jsonl", { split: "test" }),
    /single file/,
  );
});

Deno.test("a held-out fraction splits the rows the same way for the same seed", async () => {
  const rows = Array.from(
    { length: 20 },
    (_, i) => ({ prompt: `q${i}`, chosen: " a", rejected: " b" }),
  );
  const store = new MemoryFileStore({ "d.jsonl": jsonl(rows) });
  const train = await loadPreferenceDataset(store, "d.jsonl", { testFraction: 0.25, seed: 3 });
  const test = await loadPreferenceDataset(store, "d.jsonl", {
    testFraction: 0.25,
    seed: 3,
    split: "test",
  });
  assert.equal(test.rows.length, 5);
  assert.equal(train.rows.length, 15);
  assert.deepEqual(train.report.dropped, { held_out: 5 });
  const lines = [...train.rows, ...test.rows].map((r) => r.line).sort((a, b) => a - b);
  assert.deepEqual(lines, Array.from({ length: 20 }, (_, i) => i + 1));
  const again = await loadPreferenceDataset(store, "d.jsonl", {
    testFraction: 0.25,
    seed: 3,
    split: "test",
  });
  assert.deepEqual(again.rows, test.rows);
  const other = await loadPreferenceDataset(store, "d.jsonl", {
    testFraction: 0.25,
    seed: 4,
    split: "test",
  });
  assert.notDeepEqual(other.rows.map((r) => r.line), test.rows.map((r) => r.line));
});

Deno.test("the fingerprint is stable and changes with the bytes, the options and the tokenizer", async () => {
  const rows = formats[0].rows;
  const store = new MemoryFileStore({
    "a.jsonl": jsonl(rows),
    "b.jsonl": jsonl(rows),
    "c.jsonl": jsonl(rows.slice(0, 1)),
  });
  const tokenizer = await fixtureTokenizer();
  const a = await loadPreferenceDataset(store, "a.jsonl");
  const fp = await fingerprintDataset(a, tokenizer);
  assert.match(fp, /^[0-9a-f]{64}$/);
  assert.equal(
    await fingerprintDataset(await loadPreferenceDataset(store, "a.jsonl"), tokenizer),
    fp,
  );
  // Same bytes under another name, and defaults spelled out, give the same fingerprint.
  assert.equal(
    await fingerprintDataset(await loadPreferenceDataset(store, "b.jsonl"), tokenizer),
    fp,
  );
  assert.equal(
    await fingerprintDataset(a, tokenizer, {
      maxLength: 1024,
      maxPromptLength: 512,
      truncationMode: "keep_end",
    }),
    fp,
  );
  const different = [
    await fingerprintDataset(await loadPreferenceDataset(store, "c.jsonl"), tokenizer),
    await fingerprintDataset(a, tokenizer, { maxLength: 512 }),
    await fingerprintDataset(a, tokenizer, { truncationMode: "keep_start" }),
    await fingerprintDataset(
      await loadPreferenceDataset(store, "a.jsonl", { testFraction: 0.5 }),
      tokenizer,
    ),
    await fingerprintDataset(a, await fixtureTokenizer({ chat_template: "{{ messages }}" })),
  ];
  for (const other of different) assert.notEqual(other, fp);
  assert.equal(new Set(different).size, different.length);
});
