/**
 * A reference cache's identity: what it keys on (each split's data fingerprint, the tokenizer,
 * the token options), how a run's prepared data is described in a cache header, and why a cache
 * does not fit a run (stale, another tokenizer, a shard), with what to do.
 *
 * @module
 */

import { CacheError, type CacheHeader, type CacheSection } from "./reference_cache.ts";

/**
 * What a cache keys on: each split's identity, the tokenizer and the token options. Preference
 * pairs ({@link PreparedPairs}) and KTO's unpaired examples (src/pipeline/kto.ts) both have it.
 */
export interface CacheIdentity {
  sections: ReadonlyArray<{
    name: string;
    fingerprint: string;
    fileHashes: string[];
    source: string;
    examples: { length: number };
  }>;
  tokenizerFingerprint: string;
  tokenOptions: Record<string, unknown>;
}

/** Cache sections describing prepared splits. */
export function cacheSections(prepared: CacheIdentity): CacheSection[] {
  return prepared.sections.map((s) => ({
    name: s.name,
    dataset_fingerprint: s.fingerprint,
    source: s.source,
    file_hashes: s.fileHashes,
    count: s.examples.length,
  }));
}

/**
 * Why a cache does not fit a run, one reason per line with what to do; empty when it fits.
 * Compares the tokenizer, the token-affecting options and each split's data.
 */
export function cacheMismatches(header: CacheHeader, prepared: CacheIdentity): string[] {
  const reasons: string[] = [];
  if (header.start !== 0 || header.end !== header.total) {
    reasons.push(
      `it holds only examples ${header.start}..${header.end} of ${header.total} (a shard): ` +
        "join the shards with `deno task precompute --merge`",
    );
  }
  if (header.tokenizer_fingerprint !== prepared.tokenizerFingerprint) {
    reasons.push("it was built with another tokenizer");
  }
  const keys = new Set([
    ...Object.keys(header.token_options),
    ...Object.keys(prepared.tokenOptions),
  ]);
  for (const key of keys) {
    const a = JSON.stringify(header.token_options[key]);
    const b = JSON.stringify(prepared.tokenOptions[key]);
    if (a !== b) reasons.push(`it was built with ${key} ${a}, this run uses ${b}`);
  }
  for (const s of prepared.sections) {
    const cached = header.sections.find((c) => c.name === s.name);
    if (!cached) {
      reasons.push(`it has no ${s.name} split (built without it)`);
    } else if (cached.dataset_fingerprint !== s.fingerprint) {
      const files = JSON.stringify(cached.file_hashes) !== JSON.stringify(s.fileHashes);
      reasons.push(
        `its ${s.name} split was built from ${
          files ? "other data" : "the same files split or tokenized differently"
        } (${cached.source}, ${cached.count} examples; this run: ${s.source}, ${s.examples.length})`,
      );
    }
  }
  return reasons;
}

/** Raises a {@link CacheError} (exit code 2) listing why the cache at `path` is stale. */
export function assertCacheFits(header: CacheHeader, prepared: CacheIdentity, path: string): void {
  const reasons = cacheMismatches(header, prepared);
  if (reasons.length) {
    throw new CacheError(
      `${path} does not fit this run:\n  - ${reasons.join("\n  - ")}\n` +
        "rebuild it with `deno task precompute` using the same --data, --eval-data and token options",
    );
  }
}
