/**
 * Tokenizers from the objects of an HF `tokenizer.json` and `tokenizer_config.json` (read through
 * a {@link FileStore}, so the same code runs in a browser), on the two libraries transformers.js
 * itself is built from: `@huggingface/tokenizers` (the tokenizer pipeline) and `@huggingface/jinja`
 * (chat templates). Importing them rather than `@huggingface/transformers` keeps onnxruntime and
 * sharp (and their install scripts) out of the download; transformers.js's `PreTrainedTokenizer`
 * is a thin layer over the same two, and its Llama-family subclasses change only the padding side,
 * which collation decides here. Remote loading is never used.
 *
 * BOS, EOS and padding follow the tokenizer: BOS is prepended where encoding with special tokens
 * prepends it (a tokenizer whose BOS is null, like Qwen's, gets none); a tokenizer without a pad
 * token pads with EOS.
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { canonicalJson } from "./fingerprint.ts";
import type { Message } from "./types.ts";

/** What tokenization and collation need from a tokenizer; {@link HfTokenizer} implements it. */
export interface ChatTokenizer {
  /** Token ids of a text, without special tokens added (special tokens written in it still map). */
  encode(text: string): number[];
  /** The text of token ids. */
  decode(ids: readonly number[]): string;
  /** Renders a conversation with the tokenizer's chat template. */
  applyChatTemplate(
    messages: readonly Message[],
    options?: { addGenerationPrompt?: boolean },
  ): string;
  /** BOS id, or null when the tokenizer has none. */
  readonly bosTokenId: number | null;
  /** EOS id, or null when the tokenizer has none (then no EOS is appended to completions). */
  readonly eosTokenId: number | null;
  /** Id used for padding: the pad token, else EOS, else 0 (padding is masked, so only its range matters). */
  readonly padTokenId: number;
  /** Whether sequences start with BOS, as the tokenizer's own special-token handling does. */
  readonly addsBos: boolean;
  /** Size of the vocabulary including added tokens (one more than the largest id). */
  readonly vocabSize: number;
}

/** Options for building a tokenizer. */
export interface TokenizerOptions {
  /** A Jinja chat template that replaces the tokenizer's own. @default the tokenizer's template */
  chatTemplate?: string;
}

/** The special-token names a chat template sees, as transformers.js passes them to `render`. */
const SPECIAL_TOKEN_NAMES = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** A tokenizer behind the {@link ChatTokenizer} interface. */
export class HfTokenizer implements ChatTokenizer {
  /** The `@huggingface/tokenizers` tokenizer underneath. */
  readonly #inner: Tokenizer;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number;
  readonly addsBos: boolean;
  readonly vocabSize: number;
  /** The chat template (a config's named `default` template when it has several), or null. */
  readonly chatTemplate: string | null;
  /**
   * What it was built from, for dataset fingerprints: the canonical JSON of `tokenizer.json` and
   * of the config (chat template included), so a folder and the same objects agree.
   */
  readonly sources: ReadonlyArray<{ name: string; bytes: Uint8Array }>;
  readonly #specialTokens: Record<string, string>;
  #template: Template | undefined;

  /**
   * Builds a tokenizer from parsed `tokenizer.json` and `tokenizer_config.json` objects, reading
   * the special tokens from the config as transformers.js's `PreTrainedTokenizer` does.
   *
   * @example
   * ```ts
   * const tokenizer = HfTokenizer.fromJson(tokenizerJson, tokenizerConfig);
   * tokenizer.encode("Hello");
   * ```
   */
  static fromJson(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    options: TokenizerOptions = {},
  ): HfTokenizer {
    const config = options.chatTemplate === undefined
      ? tokenizerConfig
      : { ...tokenizerConfig, chat_template: options.chatTemplate };
    const encoder = new TextEncoder();
    const sources = [
      { name: "tokenizer.json", bytes: encoder.encode(canonicalJson(tokenizerJson)) },
      { name: "tokenizer_config.json", bytes: encoder.encode(canonicalJson(config)) },
    ];
    return new HfTokenizer(tokenizerJson, config, sources);
  }

  private constructor(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    sources: Array<{ name: string; bytes: Uint8Array }>,
  ) {
    const inner = new Tokenizer(tokenizerJson, config);
    this.#inner = inner;
    this.sources = sources;
    const id = (token: string | null) => token === null ? null : idOrNull(inner.token_to_id(token));
    this.bosTokenId = id(tokenFromConfig(config, "bos_token"));
    this.eosTokenId = id(tokenFromConfig(config, "eos_token"));
    // transformers.js: `pad_token`, else `eos_token`, names the padding token.
    this.padTokenId = id(tokenFromConfig(config, "pad_token", "eos_token")) ?? this.eosTokenId ?? 0;
    this.#specialTokens = {};
    for (const name of SPECIAL_TOKEN_NAMES) {
      const token = tokenFromConfig(config, name);
      if (token) this.#specialTokens[name] = token;
    }
    this.chatTemplate = chatTemplateOf(config.chat_template);
    // Probe what the tokenizer's post-processor does rather than trusting `add_bos_token`, which
    // HF honours only for some tokenizer classes.
    const withSpecial = inner.encode("a", { add_special_tokens: true }).ids;
    const plain = inner.encode("a", { add_special_tokens: false }).ids;
    this.addsBos = this.bosTokenId !== null && withSpecial[0] === this.bosTokenId &&
      plain[0] !== this.bosTokenId;
    let maxId = -1;
    for (const tokenId of inner.get_vocab().values()) maxId = Math.max(maxId, tokenId);
    this.vocabSize = maxId + 1;
  }

  encode(text: string): number[] {
    return this.#inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    return ids.length === 0 ? "" : this.#inner.decode([...ids], { skip_special_tokens: false });
  }

  applyChatTemplate(
    messages: readonly Message[],
    options: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (this.chatTemplate === null) {
      throw new Error(
        "the tokenizer has no chat_template, so conversational rows cannot be rendered: add one to " +
          "tokenizer_config.json (or chat_template.jinja), or pass a chat template",
      );
    }
    this.#template ??= new Template(this.chatTemplate);
    // The variables transformers.js's `apply_chat_template` gives the template.
    return this.#template.render({
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      tools: null,
      documents: null,
      ...this.#specialTokens,
    });
  }
}

/** A special token's text from the config (a string or an `AddedToken` object), as HF reads it. */
function tokenFromConfig(config: Record<string, unknown>, ...keys: string[]): string | null {
  for (const key of keys) {
    const item = config[key];
    if (!item) continue;
    if (typeof item === "string") return item;
    if (typeof item === "object" && (item as { __type?: unknown }).__type === "AddedToken") {
      return String((item as { content?: unknown }).content);
    }
    throw new Error(`tokenizer_config.json: ${key} is neither a string nor an AddedToken`);
  }
  return null;
}

/**
 * The template to render: a string as it is; a list of `{name, template}` (HF's form for several
 * templates) gives its `default`, as transformers.js picks when no name is asked for.
 */
function chatTemplateOf(value: unknown): string | null {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((entry) => entry?.name === "default");
    if (typeof named?.template === "string") return named.template;
    throw new Error(
      'tokenizer_config.json: chat_template lists several templates and none is named "default"; ' +
        "pass the one to use as a chat template",
    );
  }
  throw new Error("tokenizer_config.json: chat_template must be a string or a list of templates");
}

function idOrNull(id: number | undefined | null): number | null {
  return typeof id === "number" && Number.isInteger(id) ? id : null;
}

/**
 * Loads the tokenizer of a model folder: `tokenizer.json`, `tokenizer_config.json`, and
 * `chat_template.jinja` when present (newer HF saves keep the template there).
 *
 * @param store where the folder lives
 * @param dir the model or tokenizer folder
 * @throws Error naming the missing file when the folder has no `tokenizer.json`
 */
export async function loadTokenizer(
  store: FileStore,
  dir: string,
  options: TokenizerOptions = {},
): Promise<HfTokenizer> {
  const read = async (name: string, required: boolean) => {
    const path = joinPath(dir, name);
    if (!(await store.exists(path))) {
      if (!required) return undefined;
      throw new TokenizerError(
        `${path} not found: a tokenizer folder needs the HF tokenizer.json (a "fast" tokenizer); ` +
          "save it with tokenizer.save_pretrained() in Python",
      );
    }
    return await store.readText(path);
  };
  const parse = (name: string, text: string): Record<string, unknown> => {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new TokenizerError(
        `${joinPath(dir, name)}: invalid JSON (${(error as Error).message}); fix or re-save it`,
      );
    }
  };
  const tokenizerJson = parse("tokenizer.json", (await read("tokenizer.json", true))!);
  const configText = await read("tokenizer_config.json", false);
  const tokenizerConfig = configText === undefined
    ? {}
    : parse("tokenizer_config.json", configText);
  const template = await read("chat_template.jinja", false);
  if (template !== undefined && tokenizerConfig.chat_template === undefined) {
    tokenizerConfig.chat_template = template;
  }
  checkTokenIds(tokenizerJson, joinPath(dir, "tokenizer.json"));
  try {
    return HfTokenizer.fromJson(tokenizerJson, tokenizerConfig, options);
  } catch (error) {
    // transformers.js names no file: a tokenizer.json of another shape ({}), a bad config.
    const message = error instanceof Error ? error.message : String(error);
    throw new TokenizerError(
      `${joinPath(dir, "tokenizer.json")} (with tokenizer_config.json) is not a tokenizer this ` +
        `library can load (${message}); save it with tokenizer.save_pretrained() in Python`,
    );
  }
}

/**
 * Token ids in tokenizer.json must be integers a vocabulary of its size can hold: transformers.js
 * makes an array as long as the largest id, so an id of 10^9 hangs and then runs out of memory
 * (found by fuzzing). Ids may leave gaps, so the bound is generous: 2^20, or four times the
 * number of tokens listed.
 */
function checkTokenIds(json: Record<string, unknown>, path: string): void {
  const model = json.model as { vocab?: unknown } | undefined;
  const entries: Array<[string, unknown]> = [];
  const vocab = model?.vocab;
  if (vocab && typeof vocab === "object" && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) entries.push([`model.vocab["${token}"]`, id]);
  }
  if (Array.isArray(json.added_tokens)) {
    json.added_tokens.forEach((t, i) => {
      if (t && typeof t === "object" && "id" in t) entries.push([`added_tokens[${i}].id`, t.id]);
    });
  }
  const limit = Math.max(2 ** 20, 4 * entries.length);
  for (const [where, id] of entries) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= limit) {
      throw new TokenizerError(
        `${path}: ${where} is ${JSON.stringify(id)}, not a token id a vocabulary of ` +
          `${entries.length} tokens can have (an integer 0 <= id < ${limit}); fix or re-save it`,
      );
    }
  }
}

/** A tokenizer folder that cannot be loaded; exit code 2. The message names the file. */
export class TokenizerError extends Error {
  /** The exit code a command-line task should end with: 2, bad input. */
  readonly exitCode = 2;
  /** An error whose message names the file and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}
