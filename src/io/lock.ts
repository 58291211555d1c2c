/**
 * Lock files: one run at a time per output folder or cache path. The lock holds the writer's
 * process id and start time; a lock whose process no longer runs is stale and is taken over (and
 * the caller is told so).
 *
 * @module
 */

import type { FileStore } from "./fs.ts";

/** Another run holds the lock (exit code 2 on the command line: a usage conflict). */
export class LockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LockError";
  }
}

/** What a lock file records. */
interface LockRecord {
  pid: number;
  started: string;
}

/**
 * Takes the lock at `path` for `what` (e.g. "output folder runs/dpo"); resolves to its release.
 * @throws LockError while a running process holds it.
 */
export async function acquireLock(
  store: FileStore,
  path: string,
  what: string,
  log?: (message: string) => void,
): Promise<() => Promise<void>> {
  const mine: LockRecord = { pid: store.processId(), started: new Date().toISOString() };
  const bytes = new TextEncoder().encode(JSON.stringify(mine) + "\n");
  if (!await store.createExclusive(path, bytes)) {
    let holder: Partial<LockRecord> | undefined;
    try {
      holder = JSON.parse(await store.readText(path));
    } catch {
      holder = undefined; // unreadable: a writer died mid-write, so it is stale
    }
    if (typeof holder?.pid === "number" && await store.processAlive(holder.pid)) {
      throw new LockError(
        `${what} is in use by another run (pid ${holder.pid}, since ${holder.started}): wait ` +
          `for it to finish or choose another output; if no such process runs, remove ${path}`,
      );
    }
    await store.remove(path);
    if (!await store.createExclusive(path, bytes)) {
      throw new LockError(`${what}: another run took the stale lock ${path} first`);
    }
    log?.(`took over the stale lock ${path} (pid ${holder?.pid ?? "?"} no longer runs)`);
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await store.remove(path);
  };
}
