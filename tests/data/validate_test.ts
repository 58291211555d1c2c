import assert from "node:assert/strict";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import {
  loadPreferenceDataset,
  loadSftDataset,
  loadUnpairedDataset,
  validateDataset,
} from "../../src/data/dataset.ts";
import { formatIssue, ValidationError } from "../../src/data/issues.ts";
import { readRecords } from "../../src/data/read.ts";
import { validateRecords } from "../../src/data/validate.ts";
import { jsonl } from "./helpers.ts";
import { assertRejects } from "../helpers.ts";

const user = (content: string) => ({ role: "user", content });
const bot = (content: string) => ({ role: "assistant", content });

/** A conversational file whose lines 2..11 are broken in ten different ways. */
function tenBrokenRows(): Uint8Array {
  const enc = new TextEncoder();
  const lines: Uint8Array[] = [
    enc.encode(
      JSON.stringify({ prompt: [user("hi")], chosen: [bot("hello")], rejected: [bot("no")] }),
    ),
    enc.encode('{"prompt": [{"role": "user", "content": "hi"}], "chosen": }'),
    new Uint8Array([
      ...enc.encode('{"prompt": [{"role": "user", "content": "h'),
      0xff,
      ...enc.encode('"}]}'),
    ]),
    enc.encode("[1, 2]"),
    enc.encode(JSON.stringify({ prompt: [user("hi")], chosen: [bot("a")] })),
    enc.encode(JSON.stringify({ prompt: [user("hi")], chosen: 7, rejected: [bot("b")] })),
    enc.encode(JSON.stringify({ prompt: [user("hi")], chosen: [bot("")], rejected: [bot("b")] })),
    enc.encode(
      JSON.stringify({ prompt: [user("hi")], chosen: [bot("same")], rejected: [bot("same")] }),
    ),
    enc.encode(
      JSON.stringify({
        prompt: [{ role: "bot", content: "hi" }],
        chosen: [bot("a")],
        rejected: [bot("b")],
      }),
    ),
    enc.encode(
      JSON.stringify({
        prompt: [user("hi")],
        chosen: [{ role: "assistant" }],
        rejected: [bot("b")],
      }),
    ),
    enc.encode(JSON.stringify({ prompt: [user("hi")], chosen: "a", rejected: [bot("b")] })),
    enc.encode(""),
    enc.encode(
      JSON.stringify({ prompt: [user("ok")], chosen: [bot("yes")], rejected: [bot("no")] }),
    ),
  ];
  const out: number[] = [];
  for (const line of lines) out.push(...line, 0x0a);
  return new Uint8Array(out);
}

const expectedTen = [
  /^bad\.jsonl:2: row: invalid JSON/,
  /^bad\.jsonl:3: row: invalid UTF-8$/,
  /^bad\.jsonl:4: row: expected an object of named fields, got a list$/,
  /^bad\.jsonl:5: rejected: missing$/,
  /^bad\.jsonl:6: chosen: expected a list of \{role, content\} messages, got a number$/,
  /^bad\.jsonl:7: chosen: empty completion/,
  /^bad\.jsonl:8: rejected: identical to chosen$/,
  /^bad\.jsonl:9: prompt\[0\]\.role: unknown role "bot"/,
  /^bad\.jsonl:10: chosen\[0\]\.content: missing$/,
  /^bad\.jsonl:11: row: mixes formats: chosen is a string \(standard\) but prompt is a list of messages/,
];

Deno.test("a file with 10 kinds of broken rows yields exactly those 10 reports and exit code 2", async () => {
  const store = new MemoryFileStore({ "bad.jsonl": tenBrokenRows() });
  const error = await loadPreferenceDataset(store, "bad.jsonl").then(
    () => assert.fail("expected a ValidationError"),
    (e) => e,
  );
  assert.ok(error instanceof ValidationError);
  assert.equal(error.exitCode, 2);
  const lines = error.issues.map(formatIssue);
  assert.equal(lines.length, 10, lines.join("\n"));
  lines.forEach((line, i) => assert.match(line, expectedTen[i]));
  assert.match(error.message, /has 10 invalid rows/);
  assert.match(error.message, /--skip-invalid/);
});

Deno.test("skipInvalid drops the broken rows with the same report and counts them", async () => {
  const store = new MemoryFileStore({ "bad.jsonl": tenBrokenRows() });
  const dataset = await loadPreferenceDataset(store, "bad.jsonl", { skipInvalid: true });
  assert.equal(dataset.issues.length, 10);
  assert.deepEqual(dataset.rows.map((r) => r.line), [1, 13]);
  assert.equal(dataset.format, "conversational_explicit");
  assert.deepEqual(dataset.report, {
    read: 12,
    kept: 2,
    dropped: { invalid: 10 },
    truncated: 0,
    prefixMismatch: 0,
  });
  const checked = await validateDataset(store, "bad.jsonl", "preference");
  assert.equal(checked.issues.length, 10);
});

Deno.test("the error message lists the first 20 issues and a count of the rest", async () => {
  const rows = Array.from({ length: 25 }, () => ({ prompt: "a", chosen: "", rejected: "b" }));
  const store = new MemoryFileStore({
    "many.jsonl": jsonl([{ prompt: "a", chosen: "b", rejected: "c" }, ...rows]),
  });
  const error = await assertRejects(
    loadPreferenceDataset(store, "many.jsonl"),
    ValidationError,
    "many.jsonl:2: chosen: empty completion",
  );
  assert.equal(error.issues.length, 25);
  assert.match(error.message, /many\.jsonl:21: chosen: empty completion\n\.\.\. and 5 more/);
  assert.doesNotMatch(error.message, /many\.jsonl:22:/);
});

Deno.test("standard rows: empty strings are judged before EOS, and explicit rows need a prompt", async () => {
  const records = await readRecords(
    new TextEncoder().encode(jsonl([
      { prompt: "q", chosen: " a", rejected: " b" },
      { prompt: "q", chosen: " a", rejected: "" },
      { chosen: " a", rejected: " b" },
      { prompt: 3, chosen: " a", rejected: " b" },
      { prompt: "q", chosen: " a", rejected: " b", chosen_input_ids: [1] },
      { prompt: "q", chosen: " a", rejected: " a" },
    ])),
    "s.jsonl",
  );
  const { issues, rows } = validateRecords(records, "preference");
  assert.equal(rows.length, 1);
  assert.deepEqual(issues.map(formatIssue), [
    "s.jsonl:2: rejected: empty completion",
    "s.jsonl:3: prompt: missing (the dataset is standard_explicit, from its first row at s.jsonl:1)",
    "s.jsonl:4: prompt: expected a string, got a number",
    "s.jsonl:5: row: mixes formats: text field chosen and pre-tokenized field chosen_input_ids",
    "s.jsonl:6: rejected: identical to chosen",
  ]);
});

Deno.test("implicit rows split the shared prefix and keep the boundary space with the completion", async () => {
  const records = await readRecords(
    new TextEncoder().encode(jsonl([
      { chosen: "Q: the sky is blue", rejected: "Q: the sky is green" },
      { chosen: "same", rejected: "same longer" },
      { chosen: [user("hi"), bot("a")], rejected: [user("hi"), bot("b")] },
    ])),
    "i.jsonl",
  );
  const { issues, rows } = validateRecords(records, "preference");
  assert.deepEqual(rows[0], {
    file: "i.jsonl",
    line: 1,
    kind: "standard",
    prompt: "Q: the sky is",
    chosen: " blue",
    rejected: " green",
  });
  assert.deepEqual(issues.map(formatIssue), [
    "i.jsonl:2: chosen: empty completion once the prompt shared with the other completion is removed",
    "i.jsonl:3: row: row is conversational_implicit but the dataset is standard_implicit (from its first row at " +
    "i.jsonl:1); every row of a dataset must have the same format",
  ]);
});

Deno.test("pre-tokenized rows must hold non-negative integer ids", async () => {
  const records = await readRecords(
    new TextEncoder().encode(jsonl([
      { prompt_input_ids: [1, 2], chosen_input_ids: [3], rejected_input_ids: [4] },
      { prompt_input_ids: [1, 2], chosen_input_ids: [3, -1], rejected_input_ids: [4] },
      { prompt_input_ids: [1, 2], chosen_input_ids: [], rejected_input_ids: [4] },
      { prompt_input_ids: [1, 2], chosen_input_ids: [3.5], rejected_input_ids: [4] },
      // 2^40 was wrapped to 0 by the Int32Array of a batch.
      { prompt_input_ids: [1, 2 ** 40], chosen_input_ids: [3], rejected_input_ids: [4] },
    ])),
    "t.jsonl",
  );
  const { issues } = validateRecords(records, "preference");
  assert.deepEqual(issues.map(formatIssue), [
    "t.jsonl:2: chosen_input_ids[1]: expected a token id (an integer in [0, 2147483647]), got -1",
    "t.jsonl:3: chosen_input_ids: empty completion (no token ids)",
    "t.jsonl:4: chosen_input_ids[0]: expected a token id (an integer in [0, 2147483647]), got 3.5",
    "t.jsonl:5: prompt_input_ids[1]: expected a token id (an integer in [0, 2147483647]), got 1099511627776",
  ]);
});

Deno.test("JSON array files report each element's first line", async () => {
  const text =
    '[\n  {"prompt": "a", "chosen": " b", "rejected": " c"},\n  {"prompt": "a",\n   "chosen": ""' +
    ', "rejected": " c"},\n  {"prompt": "a", "chosen": " b" "rejected": " c"}\n]\n';
  const records = await readRecords(new TextEncoder().encode(text), "a.json");
  const { issues, rows } = validateRecords(records, "preference");
  assert.equal(rows.length, 1);
  assert.equal(formatIssue(issues[0]), "a.json:3: chosen: empty completion");
  assert.match(formatIssue(issues[1]), /^a\.json:5: row: invalid JSON/);
});

Deno.test("SFT and unpaired rows are validated for their own fields", async () => {
  const sft = new MemoryFileStore({
    "sft.jsonl": jsonl([
      { messages: [user("hi"), bot("hello")] },
      { messages: [user("hi"), user("again")] },
      { messages: [user("hi"), bot("hello")], text: "x" },
    ]),
  });
  const sftError = await assertRejects(
    loadSftDataset(sft, "sft.jsonl"),
    ValidationError,
    "sft.jsonl:2: messages[1].role",
  );
  assert.deepEqual(sftError.issues.map(formatIssue), [
    'sft.jsonl:2: messages[1].role: the last message must be from the assistant (it is the completion), got "user"',
    "sft.jsonl:3: row: mixes formats: has both text and messages",
  ]);
  const kto = new MemoryFileStore({
    "kto.jsonl": jsonl([
      { prompt: "q", completion: " a", label: true },
      { prompt: "q", completion: " a", label: "yes" },
      { prompt: "q", completion: " a" },
    ]),
  });
  const ktoError = await assertRejects(
    loadUnpairedDataset(kto, "kto.jsonl"),
    ValidationError,
    "kto.jsonl:3: label: missing",
  );
  assert.deepEqual(ktoError.issues.map(formatIssue), [
    "kto.jsonl:2: label: expected true or false, got a string",
    "kto.jsonl:3: label: missing",
  ]);
});
