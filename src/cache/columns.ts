/**
 * Reading a reference cache: the file checked and decoded, and the reference log-probs of one
 * section's pairs by index.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { CacheError, decodeCache, type ReferenceCache } from "./reference_cache.ts";

/** Reads and checks a cache file; errors say what to do. */
export async function readCache(store: FileStore, path: string): Promise<ReferenceCache> {
  if (!await store.exists(path)) {
    throw new CacheError(
      `${path}: no such reference cache; build it with \`deno task precompute\``,
    );
  }
  return await decodeCache(await store.readFile(path), path);
}

/** Reference log-probs (chosen, rejected) of pair `i` of section `name`, from a cache. */
export function cacheColumn(cache: ReferenceCache, name: string) {
  let offset = 0;
  for (const s of cache.header.sections) {
    if (s.name === name) break;
    offset += s.count;
  }
  const chosen = cache.columns.chosen_logp as Float64Array;
  const rejected = cache.columns.rejected_logp as Float64Array;
  return (i: number): [number, number] => [chosen[offset + i], rejected[offset + i]];
}
