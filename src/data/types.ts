/**
 * Row and example types shared by the dataset readers, the validator, the tokenization step and
 * collation. Rows are what a file holds after validation (strings, messages or token ids);
 * examples are token ids ready to collate.
 *
 * @module
 */

/** Roles a chat message may have; any other role is a validation error. */
export const MESSAGE_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;

/** One chat message, as TRL's conversational formats and HF chat templates expect it. */
export interface Message {
  /** Who speaks: system, developer, user, assistant or tool. */
  role: (typeof MESSAGE_ROLES)[number];
  /** The message text. */
  content: string;
}

/** Where a row came from: the file and its 1-based line (for Parquet, the 1-based row number). */
export interface RowSource {
  /** The file the row came from. */
  file: string;
  /** Its 1-based line (for Parquet, the 1-based row number). */
  line: number;
}

/** TRL's preference dataset formats, as detected from a row's fields. */
export type PreferenceFormat =
  | "standard_explicit"
  | "standard_implicit"
  | "conversational_explicit"
  | "conversational_implicit"
  | "pretokenized";

/** TRL's SFT dataset formats: language modeling (`text`), prompt-completion, conversational. */
export type SftFormat =
  | "text"
  | "prompt_completion"
  | "conversational_prompt_completion"
  | "messages";

/** TRL's unpaired preference format (KTO): `prompt`, `completion`, boolean `label`. */
export type UnpairedFormat = "standard_unpaired" | "conversational_unpaired";

/** Any dataset format this module reads. */
export type DatasetFormat = PreferenceFormat | SftFormat | UnpairedFormat;

/** Which kind of dataset a task reads: pairs (DPO), single sequences (SFT), labelled (KTO). */
export type DatasetKind = "preference" | "sft" | "unpaired";

/**
 * A validated preference row. Implicit rows already have their prompt split off (TRL's
 * `extract_prompt`), so every row carries an explicit prompt and two completions.
 */
export type PreferenceRow =
  & RowSource
  & (
    | { kind: "standard"; prompt: string; chosen: string; rejected: string }
    | { kind: "conversational"; prompt: Message[]; chosen: Message[]; rejected: Message[] }
    | { kind: "tokenized"; prompt: number[]; chosen: number[]; rejected: number[] }
  )
  & WinRateFields;

/**
 * SPPO's estimated win-rates of a pair's two completions, P̂(y ≻ π_t | x) in [0, 1] (the
 * dataset's `chosen_win_rate` and `rejected_win_rate`, both or neither); read by loss `sppo`.
 */
export interface WinRateFields {
  /** Win-rate of the chosen completion. */
  chosenWinRate?: number;
  /** Win-rate of the rejected completion. */
  rejectedWinRate?: number;
}

/**
 * A validated SFT or unpaired row. `text` rows have an empty prompt; `messages` rows have the
 * conversation up to the final assistant message as prompt and that message as completion.
 */
export type SequenceRow =
  & RowSource
  & (
    | { kind: "standard"; prompt: string; completion: string }
    | { kind: "conversational"; prompt: Message[]; completion: Message[] }
  )
  & { label?: boolean };

/** A tokenized preference pair: the shared prompt and the two completions (EOS included). */
export interface PreferenceExample extends RowSource, WinRateFields {
  /** Ids of the prompt (BOS included where the tokenizer adds it). */
  promptIds: number[];
  /** Ids of the chosen completion. */
  chosenIds: number[];
  /** Ids of the rejected completion. */
  rejectedIds: number[];
}

/** A tokenized single sequence (SFT, or KTO with its `label`): prompt then completion. */
export interface SequenceExample extends RowSource {
  /** Ids of the prompt. */
  promptIds: number[];
  /** Ids of the completion. */
  completionIds: number[];
  /** KTO's desirability label; absent for SFT. */
  label?: boolean;
}
