/**
 * The Deno implementation of {@link FileStore}: the only file in `src/` that touches `Deno.*`.
 * It calls Deno only inside its methods, but it must still stay out of `mod.ts` (which must run
 * in browsers): Deno entry points (tasks/, tests/) import it directly.
 *
 * @module
 */

import { FileNotFoundError, type FileStore, tempPathFor } from "./fs.ts";
import { killPoint } from "./kill_point.ts";

/** Maps Deno's NotFound to {@link FileNotFoundError}; other errors keep their message plus the path. */
function rethrow(path: string, error: unknown): never {
  if (error instanceof Deno.errors.NotFound) throw new FileNotFoundError(path);
  const message = error instanceof Error ? error.message : String(error);
  throw new Error(`${path}: ${message}`, { cause: error });
}

/**
 * {@link FileStore} on the local file system through `Deno.*`. Needs `--allow-read` and, for
 * writes, `--allow-write`.
 *
 * @example
 * ```ts
 * const store = new DenoFileStore();
 * const config = JSON.parse(await store.readText("runs/sft/config.json"));
 * ```
 */
export class DenoFileStore implements FileStore {
  /** {@inheritDoc FileStore.readFile} */
  async readFile(path: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(path);
    } catch (error) {
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.readText} */
  async readText(path: string): Promise<string> {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.writeFileAtomic} */
  async writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
    const temp = tempPathFor(path);
    try {
      // Written, then flushed to the disk before the rename, so a crash never leaves a renamed
      // file whose bytes are still only in the page cache.
      const file = await Deno.open(temp, { write: true, create: true, truncate: true });
      try {
        let done = 0;
        while (done < bytes.length) done += await file.write(bytes.subarray(done));
        await file.sync();
      } finally {
        file.close();
      }
      killPoint("atomic:before-rename");
      await Deno.rename(temp, path);
    } catch (error) {
      // Leave no half-written temporary file behind; the target is untouched.
      await Deno.remove(temp).catch(() => {});
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.exists} */
  async exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.mkdirp} */
  async mkdirp(path: string): Promise<void> {
    try {
      await Deno.mkdir(path, { recursive: true });
    } catch (error) {
      // mkdir under /proc, or in a read-only or forbidden place: the OS says "not found" or
      // "denied" of a folder the user asked to be made; that is bad usage, not a missing input.
      if (["NotFound", "PermissionDenied", "ReadOnly"].includes((error as Error).name)) {
        throw Object.assign(
          new Error(
            `${path}: this folder cannot be created (${(error as Error).message}); ` +
              "choose an output folder on a writable file system",
            { cause: error },
          ),
          { exitCode: 2 },
        );
      }
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.list} */
  async list(dir: string): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    } catch (error) {
      rethrow(dir, error);
    }
    return names.sort();
  }

  /** {@inheritDoc FileStore.remove} */
  async remove(path: string): Promise<void> {
    try {
      await Deno.remove(path, { recursive: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.createExclusive} */
  async createExclusive(path: string, bytes: Uint8Array): Promise<boolean> {
    try {
      await Deno.writeFile(path, bytes, { createNew: true });
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      rethrow(path, error);
    }
  }

  /** {@inheritDoc FileStore.processId} */
  processId(): number {
    return Deno.pid;
  }

  /** {@inheritDoc FileStore.processAlive}: /proc on Linux; elsewhere assumed alive. */
  async processAlive(id: number): Promise<boolean> {
    if (id === Deno.pid || Deno.build.os !== "linux") return true;
    try {
      await Deno.stat(`/proc/${id}`);
      return true;
    } catch {
      return false;
    }
  }
}
