/**
 * Dataset fingerprints: a SHA-256 over the file bytes (through their hashes, in order), every
 * option that changes token ids or which rows are kept (defaults resolved, so leaving an option
 * out and passing its default give the same fingerprint), and the tokenizer's files. The
 * reference log-prob cache keys on it. Uses Web Crypto, so it runs in browsers too.
 *
 * @module
 */

import { sha256Hex, stableStringify as canonicalJson } from "../io/hash.ts";

export { canonicalJson, sha256Hex };

/** What a fingerprint is computed from. */
export interface FingerprintInput {
  /** SHA-256 (hex) of each dataset file, in reading order. */
  fileHashes: readonly string[];
  /** Options that change which rows are kept or their token ids, defaults resolved. */
  options: Record<string, unknown>;
  /** The tokenizer's files (name, bytes); absent for pre-tokenized data read without one. */
  tokenizerSources?: ReadonlyArray<{ name: string; bytes: Uint8Array }>;
}

/** Version of the fingerprint recipe; bump it when tokenization changes the ids it produces. */
export const FINGERPRINT_VERSION = 1;

/**
 * The fingerprint of a processed dataset, a 64-digit hex string.
 *
 * @example
 * ```ts
 * const fp = await fingerprint({ fileHashes: dataset.fileHashes, options, tokenizerSources: tokenizer.sources });
 * ```
 */
export async function fingerprint(input: FingerprintInput): Promise<string> {
  const tokenizerHashes: Array<[string, string]> = [];
  for (const { name, bytes } of input.tokenizerSources ?? []) {
    tokenizerHashes.push([name, await sha256Hex(bytes)]);
  }
  tokenizerHashes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const text = canonicalJson({
    version: FINGERPRINT_VERSION,
    files: input.fileHashes,
    options: input.options,
    tokenizer: tokenizerHashes,
  });
  return await sha256Hex(new TextEncoder().encode(text));
}
