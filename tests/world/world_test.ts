import assert from "node:assert/strict";
import { lenmlTokenizer } from "../data/helpers.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { loadTokenizer } from "../../src/data/tokenizer.ts";
import { tokenizeSft } from "../../src/data/tokenize.ts";
import { collateSft } from "../../src/data/collate.ts";
import { seededRandom } from "../../src/data/sampler.ts";
import { sentimentScore } from "../../src/world/reward.ts";
import {
  generateReview,
  generateWorld,
  REVIEW_TOKENS,
  sampleClause,
  splitReview,
  worldVocabulary,
  writeWorld,
} from "../../src/world/world.ts";

const DATA_DIR = new URL("../../data", import.meta.url).pathname;
/** A small world, for the checks that need no particular size. */
const SMALL = { seed: 7, corpusRows: 300, sftRows: 100, sftEvalRows: 20, evalPrompts: 16 };
const rows = <T>(text: string): T[] => text.trim().split("\n").map((line) => JSON.parse(line));

Deno.test("writeWorld gives identical bytes for the same seed and different ones for another", async () => {
  const store = new DenoFileStore();
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  try {
    await writeWorld(store, dirs[0], SMALL);
    await writeWorld(store, dirs[1], SMALL);
    const names = await store.list(dirs[0]);
    assert.deepEqual(names, [
      "corpus.jsonl",
      "prompts_eval.jsonl",
      "sft.jsonl",
      "sft_eval.jsonl",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    for (const name of names) {
      assert.deepEqual(
        await store.readFile(`${dirs[1]}/${name}`),
        await store.readFile(`${dirs[0]}/${name}`),
        name,
      );
    }
    await writeWorld(store, dirs[2], { ...SMALL, seed: 8 });
    const other = await store.readText(`${dirs[2]}/corpus.jsonl`);
    assert.notEqual(other, await store.readText(`${dirs[0]}/corpus.jsonl`));
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped data/ files are what generateWorld writes with the default seed", async () => {
  for (const [name, text] of Object.entries(generateWorld())) {
    assert.equal(
      await Deno.readTextFile(`${DATA_DIR}/${name}`),
      text,
      `data/${name} is stale: run deno task world`,
    );
  }
});

Deno.test("reviews are 8-20 tokens from the vocabulary, and every scored word is in it", () => {
  const vocabulary = new Set(worldVocabulary());
  assert.ok(vocabulary.size <= 512, `vocabulary of ${vocabulary.size}`);
  const random = seededRandom(3);
  for (let i = 0; i < 500; i++) {
    const tokens = generateReview(random).split(" ");
    assert.ok(tokens.length >= REVIEW_TOKENS.min && tokens.length <= REVIEW_TOKENS.max);
    for (const token of tokens) {
      assert.ok(vocabulary.has(token), `"${token}" is not in the vocabulary`);
    }
  }
});

Deno.test("every generated clause scores with the sign of its intended sentiment", () => {
  const random = seededRandom(11);
  for (const polarity of [1, -1, 0] as const) {
    for (let i = 0; i < 300; i++) {
      const clause = sampleClause(random, polarity);
      assert.equal(Math.sign(sentimentScore(clause)), polarity, `"${clause}"`);
    }
  }
});

Deno.test("splitReview cuts 2-8 tokens of prompt and a completion that starts with a space", () => {
  const random = seededRandom(5);
  for (let i = 0; i < 200; i++) {
    const review = generateReview(random);
    const { prompt, completion } = splitReview(review, random);
    const promptTokens = prompt.split(" ").length;
    assert.ok(promptTokens >= 2 && promptTokens <= 8);
    assert.ok(completion.startsWith(" ") && completion.split(" ").length - 1 >= 5);
    assert.equal(prompt + completion, review);
  }
});

Deno.test("the corpus mixes sentiments, and held-out prompts are no prefix of a training review", () => {
  const files = generateWorld(SMALL);
  const corpus = rows<{ text: string }>(files["corpus.jsonl"]).map((r) => r.text);
  const scores = corpus.map((text) => sentimentScore(text));
  for (const sign of [1, -1, 0]) {
    assert.ok(scores.filter((s) => Math.sign(s) === sign).length > corpus.length / 10);
  }
  const sft = rows<{ prompt: string; completion: string }>(files["sft.jsonl"]);
  const training = [...corpus, ...sft.map((r) => r.prompt + r.completion)];
  const prompts = rows<{ prompt: string }>(files["prompts_eval.jsonl"]).map((r) => r.prompt);
  assert.equal(new Set(prompts).size, SMALL.evalPrompts);
  for (const prompt of prompts) {
    assert.ok(!training.some((text) => text.startsWith(prompt + " ")), `"${prompt}" was seen`);
  }
});

Deno.test("the world tokenizer loads like AutoTokenizer, prepends BOS and round-trips text", async () => {
  const tokenizer = await loadTokenizer(new DenoFileStore(), DATA_DIR);
  const auto = await lenmlTokenizer(DATA_DIR);
  assert.deepEqual([tokenizer.padTokenId, tokenizer.bosTokenId, tokenizer.eosTokenId], [0, 1, 2]);
  assert.equal(tokenizer.addsBos, true);
  assert.equal(tokenizer.vocabSize, worldVocabulary().length);
  const random = seededRandom(9);
  for (let i = 0; i < 50; i++) {
    const review = generateReview(random);
    const ids = tokenizer.encode(review);
    assert.deepEqual(ids, auto.encode(review, { add_special_tokens: false }));
    assert.equal(ids.length, review.split(" ").length);
    assert.ok(!ids.includes(3), `"${review}" has an unknown token`);
    assert.equal(tokenizer.decode(ids), review);
  }
  assert.deepEqual(auto.encode("the soup"), [1, ...tokenizer.encode("the soup")]);
  // Glued punctuation and capitals still split and map.
  assert.deepEqual(tokenizer.encode("Great soup!"), tokenizer.encode("great soup !"));
  const messages = [{ role: "user" as const, content: "the soup was" }];
  const rendered = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(rendered, "<bos><|user|> the soup was <eos> <|assistant|>");
  assert.equal(
    rendered,
    auto.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }),
  );
  assert.ok(!tokenizer.encode(rendered).includes(3));
});

Deno.test("SFT rows tokenize as BOS + prompt, completion + EOS, with no boundary mismatch", async () => {
  const tokenizer = await loadTokenizer(new DenoFileStore(), DATA_DIR);
  const sft = rows<{ prompt: string; completion: string }>(generateWorld(SMALL)["sft.jsonl"]);
  const { examples, report } = tokenizeSft(
    sft.map((r, i) => ({ kind: "standard" as const, file: "sft.jsonl", line: i + 1, ...r })),
    tokenizer,
    { maxLength: 64 },
  );
  assert.equal(examples.length, sft.length);
  assert.equal(report.prefixMismatch, 0);
  assert.equal(report.truncated, 0);
  examples.forEach((example, i) => {
    assert.deepEqual(example.promptIds, [1, ...tokenizer.encode(sft[i].prompt)]);
    assert.deepEqual(example.completionIds, [...tokenizer.encode(sft[i].completion), 2]);
    assert.ok(example.promptIds.length + example.completionIds.length <= REVIEW_TOKENS.max + 2);
  });
  const batch = collateSft(examples.slice(0, 4), { padTokenId: tokenizer.padTokenId });
  assert.ok(batch.T <= 22);
});
