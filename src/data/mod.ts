/**
 * Datasets, validation, tokenization and collation for SFT, DPO and KTO, in TRL's formats.
 *
 * @module
 */

export type {
  DatasetFormat,
  DatasetKind,
  Message,
  PreferenceExample,
  PreferenceFormat,
  PreferenceRow,
  RowSource,
  SequenceExample,
  SequenceRow,
  SftFormat,
  UnpairedFormat,
  WinRateFields,
} from "./types.ts";
export { MESSAGE_ROLES } from "./types.ts";
export {
  addDropped,
  DatasetError,
  type DatasetReport,
  formatIssue,
  formatIssues,
  formatReport,
  newReport,
  ValidationError,
  type ValidationIssue,
} from "./issues.ts";
export { isDatasetFile, type RawRecord, readRecords } from "./read.ts";
export { extractPrompt, MAX_TOKEN_ID } from "./fields.ts";
export { checkTokenRange, TokenRangeError } from "./vocab_check.ts";
export { type ValidatedRows, validateRecords } from "./validate.ts";
export { inSplit, resolveDatasetFiles } from "./files.ts";
export {
  fingerprintDataset,
  loadDataset,
  type LoadedDataset,
  type LoadOptions,
  loadPreferenceDataset,
  loadSftDataset,
  loadUnpairedDataset,
  validateDataset,
} from "./dataset.ts";
export {
  type ChatTokenizer,
  HfTokenizer,
  loadTokenizer,
  type TokenizerOptions,
} from "./tokenizer.ts";
export { encodeConversation, type EncodedRow, encodeStandard } from "./encode.ts";
export {
  type SftTokenizeOptions,
  type Tokenized,
  tokenizePreference,
  tokenizeSft,
  tokenizeUnpaired,
  truncateRow,
  type TruncationMode,
  type TruncationOptions,
} from "./tokenize.ts";
export { PromptsError, readPrompts, type ReadPromptsOptions } from "./prompts.ts";
export {
  type Batch,
  type CollateOptions,
  collatePreference,
  collateSequences,
  collateSft,
  collateUnpaired,
  type PreferenceBatch,
  type TokenBatch,
  type UnpairedBatch,
} from "./collate.ts";
export { assertWinRates, collateWinRates } from "./win_rates.ts";
export {
  BatchSampler,
  mixSeed,
  type SamplerOptions,
  seededPermutation,
  seededRandom,
} from "./sampler.ts";
export {
  canonicalJson,
  fingerprint,
  FINGERPRINT_VERSION,
  type FingerprintInput,
  sha256Hex,
} from "./fingerprint.ts";
export type { SplitSpec, TokenOptions } from "./prepare.ts";
