/**
 * Tokenizers through transformers.js, built from the objects of an HF `tokenizer.json` and
 * `tokenizer_config.json` (read through a {@link FileStore}, so the same code runs in a browser),
 * choosing the class the way `AutoTokenizer` does. Remote loading is never used.
 *
 * BOS, EOS and padding follow the tokenizer: BOS is prepended where encoding with special tokens
 * prepends it (a tokenizer whose BOS is null, like Qwen's, gets none); a tokenizer without a pad
 * token pads with EOS.
 *
 * @module
 */

import * as transformers from "@huggingface/transformers";
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

type PreTrained = transformers.PreTrainedTokenizer;

/** A transformers.js tokenizer behind the {@link ChatTokenizer} interface. */
export class HfTokenizer implements ChatTokenizer {
  /** The transformers.js tokenizer, for anything this wrapper does not cover. */
  readonly inner: PreTrained;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number;
  readonly addsBos: boolean;
  readonly vocabSize: number;
  /**
   * What it was built from, for dataset fingerprints: the canonical JSON of `tokenizer.json` and
   * of the config (chat template included), so a folder and the same objects agree.
   */
  readonly sources: ReadonlyArray<{ name: string; bytes: Uint8Array }>;

  /**
   * Builds a tokenizer from parsed `tokenizer.json` and `tokenizer_config.json` objects, with the
   * class `AutoTokenizer` would pick from `tokenizer_class` (a `Fast` suffix dropped).
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
    const className = String(config.tokenizer_class ?? "PreTrainedTokenizer").replace(/Fast$/, "");
    const exported = (transformers as unknown as Record<string, unknown>)[className];
    const Class = typeof exported === "function" &&
        (exported === transformers.PreTrainedTokenizer ||
          exported.prototype instanceof transformers.PreTrainedTokenizer)
      ? exported as typeof transformers.PreTrainedTokenizer
      : transformers.PreTrainedTokenizer;
    const encoder = new TextEncoder();
    const sources = [
      { name: "tokenizer.json", bytes: encoder.encode(canonicalJson(tokenizerJson)) },
      { name: "tokenizer_config.json", bytes: encoder.encode(canonicalJson(config)) },
    ];
    return new HfTokenizer(new Class(tokenizerJson, config), sources);
  }

  constructor(inner: PreTrained, sources: Array<{ name: string; bytes: Uint8Array }> = []) {
    this.inner = inner;
    this.sources = sources;
    this.bosTokenId = idOrNull(inner.bos_token_id);
    this.eosTokenId = idOrNull(inner.eos_token_id);
    this.padTokenId = idOrNull(inner.pad_token_id) ?? this.eosTokenId ?? 0;
    // Probe what the tokenizer's post-processor does rather than trusting `add_bos_token`, which
    // HF honours only for some tokenizer classes.
    const withSpecial = inner.encode("a", { add_special_tokens: true });
    const plain = inner.encode("a", { add_special_tokens: false });
    this.addsBos = this.bosTokenId !== null && withSpecial[0] === this.bosTokenId &&
      plain[0] !== this.bosTokenId;
    let maxId = -1;
    for (const id of inner.get_vocab().values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  encode(text: string): number[] {
    return this.inner.encode(text, { add_special_tokens: false });
  }

  decode(ids: readonly number[]): string {
    return ids.length === 0 ? "" : this.inner.decode([...ids], { skip_special_tokens: false });
  }

  applyChatTemplate(
    messages: readonly Message[],
    options: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (!this.inner.chat_template) {
      throw new Error(
        "the tokenizer has no chat_template, so conversational rows cannot be rendered: add one to " +
          "tokenizer_config.json (or chat_template.jinja), or pass a chat template",
      );
    }
    return this.inner.apply_chat_template(messages.map((m) => ({ ...m })), {
      tokenize: false,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    }) as string;
  }
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
      throw new Error(
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
      throw new Error(`${joinPath(dir, name)}: invalid JSON (${(error as Error).message})`);
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
  return HfTokenizer.fromJson(tokenizerJson, tokenizerConfig, options);
}
