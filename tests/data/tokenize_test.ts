import assert from "node:assert/strict";
import {
  tokenizePreference,
  tokenizeSft,
  tokenizeUnpaired,
  truncateRow,
} from "../../src/data/tokenize.ts";
import type { PreferenceRow, SequenceRow } from "../../src/data/types.ts";
import { fixtureTokenizer } from "./helpers.ts";

// Fixture ids: <unk>0 <s>1 </s>2 <pad>3 <|user|>5 <|assistant|>6 <|end|>7, the8 sky9 is10 blue11
// green12 red13 what14 color15 ?16 hello17 hi18 world19 .30
const src = { file: "d.jsonl", line: 1 };
const standard = (prompt: string, chosen: string, rejected: string): PreferenceRow => ({
  ...src,
  kind: "standard",
  prompt,
  chosen,
  rejected,
});

Deno.test("standard rows get the tokenizer's BOS before the prompt and EOS after each completion", async () => {
  const tokenizer = await fixtureTokenizer();
  const { examples, report } = tokenizePreference(
    [standard("The sky is", " blue", " green")],
    tokenizer,
  );
  assert.deepEqual(examples[0].promptIds, [1, 8, 9, 10]);
  assert.deepEqual(examples[0].chosenIds, [11, 2]);
  assert.deepEqual(examples[0].rejectedIds, [12, 2]);
  assert.deepEqual(report, { read: 1, kept: 1, dropped: {}, truncated: 0, prefixMismatch: 0 });
});

Deno.test("a completion that already ends with EOS does not get a second one", async () => {
  const tokenizer = await fixtureTokenizer();
  const { examples } = tokenizePreference(
    [standard("the sky is", " blue</s>", " green")],
    tokenizer,
  );
  assert.deepEqual(examples[0].chosenIds, [11, 2]);
});

Deno.test("a tokenizer whose BOS is null gets none, and one without a pad token pads with EOS", async () => {
  const tokenizer = await fixtureTokenizer({ bos_token: null, pad_token: null });
  assert.equal(tokenizer.bosTokenId, null);
  assert.equal(tokenizer.addsBos, false);
  assert.equal(tokenizer.padTokenId, 2);
  const { examples } = tokenizePreference([standard("the sky is", " blue", " green")], tokenizer);
  assert.deepEqual(examples[0].promptIds, [8, 9, 10]);
  const withPad = await fixtureTokenizer();
  assert.equal(withPad.padTokenId, 3);
});

Deno.test("a completion that merges with the prompt is tokenized apart and counted", async () => {
  const tokenizer = await fixtureTokenizer();
  // "the sky is bl" + "ue" encodes as [... blue], which does not start with the prompt's [... <unk>].
  const { examples, report } = tokenizePreference(
    [standard("the sky is bl", "ue", " green")],
    tokenizer,
  );
  assert.deepEqual(examples[0].promptIds, [1, 8, 9, 10, 0]);
  assert.deepEqual(examples[0].chosenIds, [0, 2]);
  assert.deepEqual(examples[0].rejectedIds, [12, 2]);
  assert.equal(report.prefixMismatch, 1);
});

Deno.test("conversational rows are rendered with the chat template and get no extra EOS", async () => {
  const tokenizer = await fixtureTokenizer();
  const row: PreferenceRow = {
    ...src,
    kind: "conversational",
    prompt: [{ role: "user", content: "What color is the sky?" }],
    chosen: [{ role: "assistant", content: "Blue." }],
    rejected: [{ role: "assistant", content: "Green." }],
  };
  const { examples } = tokenizePreference([row], tokenizer);
  assert.deepEqual(examples[0].promptIds, [1, 5, 14, 15, 10, 8, 9, 16, 7, 6]);
  assert.deepEqual(examples[0].chosenIds, [11, 30, 7]);
  assert.deepEqual(examples[0].rejectedIds, [12, 30, 7]);
});

Deno.test("a chat template that renders the prompt differently drops the row as template_mismatch", async () => {
  const tokenizer = await fixtureTokenizer({
    chat_template:
      "{% for m in messages %}{{ m.content }} {% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
  });
  const row: PreferenceRow = {
    ...src,
    kind: "conversational",
    prompt: [{ role: "user", content: "hi" }],
    chosen: [{ role: "assistant", content: "blue" }],
    rejected: [{ role: "assistant", content: "green" }],
  };
  const { examples, report } = tokenizePreference([row], tokenizer);
  assert.equal(examples.length, 0);
  assert.deepEqual(report.dropped, { template_mismatch: 1 });
});

Deno.test("pre-tokenized rows are used exactly as given", async () => {
  const tokenizer = await fixtureTokenizer();
  const row: PreferenceRow = {
    ...src,
    kind: "tokenized",
    prompt: [5, 6],
    chosen: [7],
    rejected: [8, 9],
  };
  const { examples } = tokenizePreference([row], tokenizer);
  assert.deepEqual(examples[0], { ...src, promptIds: [5, 6], chosenIds: [7], rejectedIds: [8, 9] });
});

Deno.test("maxPromptLength keeps the end of the prompt in keep_end mode and its start in keep_start", () => {
  const prompt = [1, 2, 3, 4, 5];
  assert.deepEqual(
    truncateRow(prompt, [[6]], { maxPromptLength: 2, truncationMode: "keep_end" })!.promptIds,
    [4, 5],
  );
  assert.deepEqual(
    truncateRow(prompt, [[6]], { maxPromptLength: 2, truncationMode: "keep_start" })!.promptIds,
    [1, 2],
  );
  const fitted = truncateRow(prompt, [[6, 7, 8], [9]], { maxLength: 7, maxPromptLength: null });
  assert.deepEqual(fitted, { promptIds: prompt, completionIds: [[6, 7], [9]], truncated: true });
  assert.equal(truncateRow(prompt, [[6]], { maxLength: 5, maxPromptLength: null }), null);
});

Deno.test("rows that do not fit are dropped as too_long and truncated rows are counted", async () => {
  const tokenizer = await fixtureTokenizer();
  const rows = [
    standard("the sky is", " blue", " green"),
    standard("what color is the sky ?", " blue", " red"),
  ];
  const { examples, report } = tokenizePreference(rows, tokenizer, {
    maxLength: 6,
    maxPromptLength: null,
  });
  assert.equal(examples.length, 1);
  assert.deepEqual(report, {
    read: 2,
    kept: 1,
    dropped: { too_long: 1 },
    truncated: 0,
    prefixMismatch: 0,
  });
  const cut = tokenizePreference(rows, tokenizer, {
    maxLength: 5,
    maxPromptLength: 3,
    truncationMode: "keep_end",
  });
  assert.deepEqual(cut.examples.map((e) => [e.promptIds, e.chosenIds]), [
    [[8, 9, 10], [11, 2]],
    [[8, 9, 16], [11, 2]],
  ]);
  assert.equal(cut.report.truncated, 2);
  const start = tokenizePreference(rows, tokenizer, {
    maxLength: 4,
    maxPromptLength: 3,
    truncationMode: "keep_start",
  });
  assert.deepEqual(start.examples.map((e) => [e.promptIds, e.chosenIds]), [
    [[1, 8, 9], [11]],
    [[1, 14, 15], [11]],
  ]);
});

const seq = (
  fields: Partial<SequenceRow>,
): SequenceRow => ({
  ...src,
  kind: "standard",
  prompt: "",
  completion: "",
  ...fields,
} as SequenceRow);

Deno.test("SFT text rows are all completion after BOS", async () => {
  const tokenizer = await fixtureTokenizer();
  const { examples } = tokenizeSft([seq({ completion: "hello world" })], tokenizer);
  assert.deepEqual(examples[0].promptIds, [1]);
  assert.deepEqual(examples[0].completionIds, [17, 19, 2]);
});

Deno.test("SFT masks the prompt unless completionOnlyLoss is false", async () => {
  const tokenizer = await fixtureTokenizer();
  const rows = [seq({ prompt: "the sky is", completion: " blue" })];
  assert.deepEqual(tokenizeSft(rows, tokenizer).examples[0].promptIds, [1, 8, 9, 10]);
  const whole = tokenizeSft(rows, tokenizer, { completionOnlyLoss: false }).examples[0];
  assert.deepEqual([whole.promptIds, whole.completionIds], [[1], [8, 9, 10, 11, 2]]);
  const messages: SequenceRow = {
    ...src,
    kind: "conversational",
    prompt: [{ role: "user", content: "hi" }],
    completion: [{ role: "assistant", content: "hello" }],
  };
  const chat = tokenizeSft([messages], tokenizer).examples[0];
  assert.deepEqual([chat.promptIds, chat.completionIds], [[1, 5, 18, 7, 6], [17, 7]]);
});

Deno.test("unpaired rows keep their label", async () => {
  const tokenizer = await fixtureTokenizer();
  const { examples } = tokenizeUnpaired([
    seq({ prompt: "the sky is", completion: " blue", label: true }),
    seq({ prompt: "the sky is", completion: " red", label: false }),
  ], tokenizer);
  assert.deepEqual(examples.map((e) => [e.completionIds, e.label]), [[[11, 2], true], [
    [13, 2],
    false,
  ]]);
});
