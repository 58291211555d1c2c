/**
 * Turns a prompt and its completions into token ids, the way TRL does per format:
 * standard text gets the tokenizer's BOS before the prompt and EOS after each completion (unless
 * the completion already ends with it); conversations are rendered with the chat template (the
 * prompt with the generation prompt) and get no extra tokens, the template ends the turn.
 *
 * A completion's ids are taken from the encoding of `prompt + completion` when that starts with
 * the prompt's ids, so a completion reads as the model will see it; when the tokenizer merges
 * across the boundary, prompt and completion are tokenized apart and joined, as TRL does, and the
 * row is counted.
 *
 * @module
 */

import type { ChatTokenizer } from "./tokenizer.ts";
import type { Message } from "./types.ts";

/** A prompt's ids and the ids of each of its completions. */
export interface EncodedRow {
  /** Ids of the prompt. */
  promptIds: number[];
  /** Ids of each completion, in order. */
  completionIds: number[][];
  /** Whether any completion had to be tokenized apart from the prompt. */
  prefixMismatch: boolean;
}

/** Raised (and turned into a `template_mismatch` drop) when a template renders the prompt differently. */
export class TemplateMismatch extends Error {}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (ids.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/** Completion ids from the joined encoding, or apart when the prompt's ids are not a prefix. */
function encodeCompletion(
  tokenizer: ChatTokenizer,
  promptText: string,
  promptIds: readonly number[],
  completionText: string,
): { ids: number[]; apart: boolean } {
  const joined = tokenizer.encode(promptText + completionText);
  if (startsWith(joined, promptIds)) return { ids: joined.slice(promptIds.length), apart: false };
  return { ids: tokenizer.encode(completionText), apart: true };
}

/** Encodes a standard (text) prompt and completions: BOS as the tokenizer adds it, EOS appended. */
export function encodeStandard(
  tokenizer: ChatTokenizer,
  prompt: string,
  completions: readonly string[],
): EncodedRow {
  const textIds = tokenizer.encode(prompt);
  const bos = tokenizer.addsBos && tokenizer.bosTokenId !== null ? [tokenizer.bosTokenId] : [];
  let prefixMismatch = false;
  const completionIds = completions.map((completion) => {
    const { ids, apart } = encodeCompletion(tokenizer, prompt, textIds, completion);
    prefixMismatch ||= apart;
    const eos = tokenizer.eosTokenId;
    if (eos !== null && ids[ids.length - 1] !== eos) ids.push(eos);
    return ids;
  });
  return { promptIds: [...bos, ...textIds], completionIds, prefixMismatch };
}

/**
 * Encodes a conversation: the prompt messages rendered with the generation prompt, each
 * completion as the rest of the rendering of prompt + completion (TRL's
 * `maybe_apply_chat_template`).
 *
 * @throws TemplateMismatch when the full rendering does not start with the prompt's rendering
 */
export function encodeConversation(
  tokenizer: ChatTokenizer,
  prompt: readonly Message[],
  completions: ReadonlyArray<readonly Message[]>,
): EncodedRow {
  const promptText = tokenizer.applyChatTemplate(prompt, {
    addGenerationPrompt: prompt.length > 0,
  });
  const promptIds = tokenizer.encode(promptText);
  let prefixMismatch = false;
  const completionIds = completions.map((completion) => {
    const fullText = tokenizer.applyChatTemplate([...prompt, ...completion]);
    if (!fullText.startsWith(promptText)) {
      throw new TemplateMismatch(
        "the chat template renders the prompt with the generation prompt differently from the " +
          "start of the whole conversation",
      );
    }
    const { ids, apart } = encodeCompletion(
      tokenizer,
      promptText,
      promptIds,
      fullText.slice(promptText.length),
    );
    prefixMismatch ||= apart;
    return ids;
  });
  return { promptIds, completionIds, prefixMismatch };
}
