/**
 * Token ids checked against the model's vocabulary once the data and the model's config are both
 * known, for every input path (pre-tokenized or tokenized here): an id outside `[0, vocab_size)`
 * would read past the embedding (the CPU refuses it mid-run, WebGPU reads garbage), so it is bad
 * input, named by file:line and field, before anything is built.
 *
 * @module
 */

import type { PreferenceExample, SequenceExample } from "./types.ts";

/** A token id outside the model's vocabulary; exit code 2 on the command line. */
export class TokenRangeError extends Error {
  /** The exit code a command-line task should end with: 2, bad input. */
  readonly exitCode = 2;
  /** An error naming the row (file:line), the field and the id. */
  constructor(message: string) {
    super(message);
    this.name = "TokenRangeError";
  }
}

const FIELDS = [
  ["promptIds", "prompt_input_ids"],
  ["chosenIds", "chosen_input_ids"],
  ["rejectedIds", "rejected_input_ids"],
  ["completionIds", "completion ids"],
] as const;

/**
 * Throws for the first example holding a token id outside `[0, vocabSize)`.
 *
 * @param vocabSize the model's `vocab_size`
 * @param modelDir the model folder whose config.json gives it, for the message
 * @throws {TokenRangeError} naming file:line, the field, the id and the vocabulary
 */
export function checkTokenRange(
  examples: Iterable<PreferenceExample | SequenceExample>,
  vocabSize: number,
  modelDir: string,
): void {
  for (const example of examples) {
    for (const [key, field] of FIELDS) {
      const ids = (example as unknown as Record<string, number[] | undefined>)[key];
      if (!ids) continue;
      const i = ids.findIndex((id) => !(id >= 0 && id < vocabSize && Number.isInteger(id)));
      if (i < 0) continue;
      throw new TokenRangeError(
        `${example.file}:${example.line}: ${field} holds token id ${ids[i]}, outside the ` +
          `model's vocabulary [0, ${vocabSize}) (vocab_size of ${modelDir}/config.json): the data was ` +
          "tokenized for another model; tokenize it with this model's tokenizer",
      );
    }
  }
}
