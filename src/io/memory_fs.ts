/**
 * An in-memory {@link FileStore}: for tests, and for browsers that hold a checkpoint in memory
 * (e.g. files the user dropped on a page). It behaves like a real file system where it matters to
 * callers: writing into a missing folder fails, reading a missing file rejects with
 * {@link FileNotFoundError}, and atomic writes go through a temporary entry and a rename.
 *
 * @module
 */

import { dirname, FileNotFoundError, type FileStore, joinPath, tempPathFor } from "./fs.ts";

/** Normalises a path so that `a//b/./c` and `a/b/c` name the same entry. */
function normalize(path: string): string {
  return joinPath(path);
}

/**
 * A {@link FileStore} whose files live in a `Map`. By default bytes are copied on the way in and
 * out, so a caller that reuses its buffer cannot change a stored file; `{ copy: false }` stores
 * and returns the caller's own arrays (a browser holding a model of hundreds of MB, whose callers
 * never write into what they read or wrote).
 *
 * @example
 * ```ts
 * const store = new MemoryFileStore({ "ckpt/config.json": '{"model_type":"llama"}' });
 * await store.readText("ckpt/config.json");
 * ```
 */
export class MemoryFileStore implements FileStore {
  readonly #files = new Map<string, Uint8Array>();
  readonly #dirs = new Set<string>([".", "/"]);
  readonly #copy: (bytes: Uint8Array) => Uint8Array;

  /**
   * An in-memory store.
   *
   * @param initial files to start with, path → bytes or UTF-8 text; their folders are created.
   * @param options.copy copy bytes on every read and write (default true).
   */
  constructor(initial: Record<string, Uint8Array | string> = {}, options: { copy?: boolean } = {}) {
    this.#copy = options.copy === false ? (b) => b : (b) => b.slice();
    for (const [path, content] of Object.entries(initial)) {
      const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
      this.#addDirs(dirname(normalize(path)));
      this.#files.set(normalize(path), this.#copy(bytes));
    }
  }

  /** Paths of every stored file, sorted (tests use it to check that no temporary file is left). */
  paths(): string[] {
    return [...this.#files.keys()].sort();
  }

  /** {@inheritDoc FileStore.readFile} */
  readFile(path: string): Promise<Uint8Array> {
    const bytes = this.#files.get(normalize(path));
    if (!bytes) return Promise.reject(new FileNotFoundError(path));
    return Promise.resolve(this.#copy(bytes));
  }

  /** {@inheritDoc FileStore.readText} */
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  /** {@inheritDoc FileStore.writeFileAtomic} */
  writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
    const target = normalize(path);
    const folder = dirname(target);
    if (!this.#dirs.has(folder)) {
      return Promise.reject(
        new FileNotFoundError(folder, `cannot write ${path}: folder ${folder} does not exist`),
      );
    }
    if (this.#dirs.has(target)) {
      return Promise.reject(new Error(`cannot write ${path}: it is a folder`));
    }
    // Same sequence as on disk: temporary entry, then a rename over the target.
    const temp = normalize(tempPathFor(target));
    this.#files.set(temp, this.#copy(bytes));
    this.#files.set(target, this.#files.get(temp)!);
    this.#files.delete(temp);
    return Promise.resolve();
  }

  /** {@inheritDoc FileStore.exists} */
  exists(path: string): Promise<boolean> {
    const key = normalize(path);
    return Promise.resolve(this.#files.has(key) || this.#dirs.has(key));
  }

  /** {@inheritDoc FileStore.mkdirp} */
  mkdirp(path: string): Promise<void> {
    const key = normalize(path);
    if (this.#files.has(key)) {
      return Promise.reject(new Error(`cannot create folder ${path}: a file has that name`));
    }
    this.#addDirs(key);
    return Promise.resolve();
  }

  /** {@inheritDoc FileStore.list} */
  list(dir: string): Promise<string[]> {
    const key = normalize(dir);
    if (!this.#dirs.has(key)) return Promise.reject(new FileNotFoundError(dir));
    const names = new Set<string>();
    for (const path of [...this.#files.keys(), ...this.#dirs]) {
      if (path !== key && dirname(path) === key) names.add(path.slice(path.lastIndexOf("/") + 1));
    }
    return Promise.resolve([...names].sort());
  }

  /** {@inheritDoc FileStore.remove} */
  remove(path: string): Promise<void> {
    const key = normalize(path);
    const inside = (p: string) => p === key || p.startsWith(key + "/");
    for (const p of [...this.#files.keys()]) if (inside(p)) this.#files.delete(p);
    for (const d of [...this.#dirs]) if (inside(d) && d !== "." && d !== "/") this.#dirs.delete(d);
    return Promise.resolve();
  }

  /** {@inheritDoc FileStore.createExclusive} */
  async createExclusive(path: string, bytes: Uint8Array): Promise<boolean> {
    if (await this.exists(path)) return false;
    await this.writeFileAtomic(path, bytes);
    return true;
  }

  /** {@inheritDoc FileStore.processId}: one id per store (a page or a worker is one process). */
  processId(): number {
    return 1;
  }

  /** {@inheritDoc FileStore.processAlive}: a lock in memory was written by this process. */
  processAlive(_id: number): Promise<boolean> {
    return Promise.resolve(true);
  }

  #addDirs(path: string): void {
    for (let dir = path; !this.#dirs.has(dir); dir = dirname(dir)) this.#dirs.add(dir);
  }
}
