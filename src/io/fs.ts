/**
 * File access for checkpoints, caches and datasets, behind one small interface so that a browser
 * can supply its own store (in memory, OPFS, a folder picked by the user). The Deno version lives
 * in `deno_fs.ts`, the only file in `src/` that touches `Deno.*`; `memory_fs.ts` holds an
 * in-memory store for tests and browsers.
 *
 * Paths are plain strings with `/` separators; {@link joinPath} builds them without `node:path`.
 *
 * @module
 */

/** What the library needs from a file system. Every method rejects with an `Error` naming the path. */
export interface FileStore {
  /** The whole content of a file. Rejects with {@link FileNotFoundError} when it does not exist. */
  readFile(path: string): Promise<Uint8Array>;
  /** The content of a UTF-8 text file. Rejects with {@link FileNotFoundError} when it does not exist. */
  readText(path: string): Promise<string>;
  /**
   * Writes a whole file so that readers see either the old content or the new one, never a
   * partial file: the bytes go to a temporary file in the same folder, which is then renamed
   * over `path` (a rename within one folder is atomic on POSIX file systems).
   */
  writeFileAtomic(path: string, bytes: Uint8Array): Promise<void>;
  /** Whether a file or folder exists at `path`. */
  exists(path: string): Promise<boolean>;
  /** Creates a folder and its missing parents; succeeds if it already exists. */
  mkdirp(path: string): Promise<void>;
  /** Names (not paths) of the entries of a folder, sorted. Rejects when the folder does not exist. */
  list(dir: string): Promise<string[]>;
  /** Removes a file, or a folder with everything in it; succeeds when nothing is there. */
  remove(path: string): Promise<void>;
  /**
   * Creates a file only if nothing is at `path`, in one step no other writer can interleave with
   * (the primitive of lock files). Resolves false, writing nothing, when something is there.
   */
  createExclusive(path: string, bytes: Uint8Array): Promise<boolean>;
  /** An id of this process, written into lock files. */
  processId(): number;
  /** Whether the process that wrote a lock file still runs (true when it cannot be told). */
  processAlive(id: number): Promise<boolean>;
}

/** Raised by a {@link FileStore} when a file or folder is missing, so callers can say what to do. */
export class FileNotFoundError extends Error {
  /** The path that was looked for. */
  readonly path: string;
  /** An error for the missing `path`. */
  constructor(path: string, message = `file not found: ${path}`) {
    super(message);
    this.name = "FileNotFoundError";
    this.path = path;
  }
}

/**
 * Joins path segments with `/`, collapsing repeated separators and dropping empty segments and
 * `.`; keeps a leading `/`.
 *
 * @example
 * ```ts
 * joinPath("runs/sft/", "model.safetensors"); // "runs/sft/model.safetensors"
 * ```
 */
export function joinPath(...segments: string[]): string {
  const absolute = segments.length > 0 && segments[0].startsWith("/");
  const parts: string[] = [];
  for (const segment of segments) {
    for (const part of segment.split("/")) {
      if (part !== "" && part !== ".") parts.push(part);
    }
  }
  const joined = parts.join("/");
  return absolute ? `/${joined}` : joined === "" ? "." : joined;
}

/** The folder part of a path (`"a/b/c.json"` → `"a/b"`, `"c.json"` → `"."`). */
export function dirname(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return ".";
  if (slash === 0) return "/";
  return trimmed.slice(0, slash);
}

/** The last segment of a path (`"a/b/c.json"` → `"c.json"`). */
export function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

let tempCounter = 0;

/**
 * A temporary file name beside `path` for atomic writes: same folder (so the rename stays on one
 * file system), hidden, and ending in `.tmp` so that `.gitignore` and cleanup tools recognise it.
 */
export function tempPathFor(path: string): string {
  const random = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, "0");
  tempCounter = (tempCounter + 1) % 0x10000;
  return joinPath(dirname(path), `.${basename(path)}.${random}${tempCounter.toString(16)}.tmp`);
}

/** Whether `name` (a file name, not a path) is a temporary file {@link tempPathFor} made for `target`. */
export function isTempFileOf(name: string, target: string): boolean {
  const prefix = `.${basename(target)}.`;
  return name.startsWith(prefix) && /^[0-9a-f]{9,12}\.tmp$/.test(name.slice(prefix.length));
}

/** Whether `name` is any temporary file {@link tempPathFor} made. */
export function isTempFile(name: string): boolean {
  return /^\..+\.[0-9a-f]{9,12}\.tmp$/.test(name);
}
