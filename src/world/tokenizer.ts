/**
 * The embedded world's tokenizer in Hugging Face's formats: a word-level `tokenizer.json` and a
 * `tokenizer_config.json` with a chat template, both loadable by `AutoTokenizer`. The vocabulary
 * comes from the grammar (`worldVocabulary` in ./world.ts).
 *
 * @module
 */

/** Special tokens, ids 0.. in this order. BOS is prepended to every sequence (see the README). */
export const SPECIAL_TOKENS = [
  "<pad>",
  "<bos>",
  "<eos>",
  "<unk>",
  "<|system|>",
  "<|user|>",
  "<|assistant|>",
] as const;

/**
 * The chat template: `<bos><|user|> text <eos> <|assistant|>`; each turn ends with EOS, so a
 * model stops after its turn as it stops after a completion.
 */
export const WORLD_CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}<|" +
  "{{ message['role'] }}|> {{ message['content'] }} {{ eos_token }} {% endfor %}" +
  "{% if add_generation_prompt %}<|assistant|>{% endif %}";

/**
 * HF `tokenizer.json`: a WordLevel model over `vocabulary` (ids in order), lower-casing, the
 * `Whitespace` pre-tokenizer (words and runs of punctuation), BOS prepended by the post-processor,
 * and a decoder that joins tokens with single spaces (so decoding generated text round-trips).
 */
export function worldTokenizerJson(vocabulary: readonly string[]): Record<string, unknown> {
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const bos = { SpecialToken: { id: "<bos>", type_id: 0 } };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t, id) => special(t, id)),
    normalizer: { type: "Lowercase" },
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: [bos, { Sequence: { id: "A", type_id: 0 } }],
      pair: [bos, { Sequence: { id: "A", type_id: 0 } }, bos, {
        Sequence: { id: "B", type_id: 1 },
      }],
      special_tokens: { "<bos>": { id: "<bos>", ids: [1], tokens: ["<bos>"] } },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: false },
    model: {
      type: "WordLevel",
      vocab: Object.fromEntries(vocabulary.map((token, id) => [token, id])),
      unk_token: "<unk>",
    },
  };
}

/** HF `tokenizer_config.json` of the world's tokenizer, with {@link WORLD_CHAT_TEMPLATE}. */
export function worldTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<bos>",
    eos_token: "<eos>",
    pad_token: "<pad>",
    unk_token: "<unk>",
    add_bos_token: true,
    add_eos_token: false,
    model_max_length: 64,
    clean_up_tokenization_spaces: false,
    chat_template: WORLD_CHAT_TEMPLATE,
  };
}
