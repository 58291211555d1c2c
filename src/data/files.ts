/**
 * Finds the files of a dataset: one file, or a folder of shards (an HF hub dataset folder such
 * as `data/train-00000-of-00002.parquet`, or `train.jsonl` beside `test.jsonl`), and picks the
 * files of a named split. A file belongs to split S when a folder on its path is named S or its
 * name starts with S followed by `-`, `_` or `.`.
 *
 * @module
 */

import { type FileStore, joinPath } from "../io/fs.ts";
import { isDatasetFile } from "./read.ts";

/** Split names that mark a folder as split into parts. */
const KNOWN_SPLITS = ["train", "test", "validation", "valid", "dev", "eval"];

/** Whether `relative` (a path under the dataset folder) belongs to `split`. */
export function inSplit(relative: string, split: string): boolean {
  const parts = relative.split("/");
  const name = parts.pop()!;
  return parts.includes(split) || new RegExp(`^${escapeRegExp(split)}([-_.]|$)`).test(name);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function isFolder(store: FileStore, path: string): Promise<boolean> {
  try {
    await store.list(path);
    return true;
  } catch {
    return false;
  }
}

/** Dataset files under a folder (up to `depth` levels down), as paths relative to it, sorted. */
async function datasetFilesUnder(store: FileStore, dir: string, depth: number): Promise<string[]> {
  const found: string[] = [];
  for (const name of await store.list(dir)) {
    if (name.startsWith(".")) continue;
    const path = joinPath(dir, name);
    if (depth > 0 && await isFolder(store, path)) {
      for (const inner of await datasetFilesUnder(store, path, depth - 1)) {
        found.push(`${name}/${inner}`);
      }
    } else if (isDatasetFile(name)) {
      found.push(name);
    }
  }
  return found.sort();
}

/**
 * The files to read for `split` at `path`, in reading order.
 *
 * A single file is the `train` split (ask for a held-out fraction to get a `test` split from it).
 * In a folder whose files carry no split names, every file is `train`.
 *
 * @throws Error saying what exists when the path or the split is missing
 */
export async function resolveDatasetFiles(
  store: FileStore,
  path: string,
  split = "train",
): Promise<string[]> {
  if (!(await store.exists(path))) throw new Error(`dataset not found: ${path}`);
  if (!(await isFolder(store, path))) {
    if (split !== "train") {
      throw new Error(
        `${path} is a single file, so it has only a train split, not "${split}": pass a held-out ` +
          "fraction (--test-fraction) or a folder with split files",
      );
    }
    return [path];
  }
  const files = await datasetFilesUnder(store, path, 3);
  if (files.length === 0) {
    throw new Error(`no .jsonl, .json or .parquet files under ${path}`);
  }
  const selected = files.filter((f) => inSplit(f, split));
  if (selected.length > 0) return selected.map((f) => joinPath(path, f));
  const splits = KNOWN_SPLITS.filter((s) => files.some((f) => inSplit(f, s)));
  if (splits.length === 0 && split === "train") return files.map((f) => joinPath(path, f));
  throw new Error(
    `no files for split "${split}" under ${path} (splits found: ${splits.join(", ") || "none"})`,
  );
}
