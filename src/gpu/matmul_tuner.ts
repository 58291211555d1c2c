/**
 * The matmul tuner: times every tiled candidate (kernels/matmul_tiled.ts) on the shapes a run
 * actually records, once per adapter and shape, and keeps the fastest in a small JSON document
 * ({@link TuningStore}: a file under the user's cache folder from the tasks, memory in a
 * browser). Shapes are noted by the policy as they are first recorded and timed at the next
 * `GpuContext.finish`, on a sibling context of the same device (so the run's arenas do not
 * grow); candidates give identical bits, so switching after tuning changes speed only.
 *
 * @module
 */

import { GpuContext, type KernelTuner } from "./context.ts";
import { matmul } from "./kernels/matmul.ts";
import { tiledName } from "./kernels/matmul_tiled.ts";
import { candidatesFor } from "./matmul_policy.ts";

/** Where the tuning document lives. */
export interface TuningStore {
  /** The document's text, or undefined when there is none yet. */
  load(): Promise<string | undefined>;
  /** Replaces the document (atomically where the store can). */
  save(text: string): Promise<void>;
  /** Where it lives, for messages. */
  readonly where: string;
}

/** A store in memory (the browser's, and the tests'). */
export function memoryStore(): TuningStore & { text?: string } {
  const store: TuningStore & { text?: string } = {
    where: "memory",
    load: () => Promise.resolve(store.text),
    save: (text) => {
      store.text = text;
      return Promise.resolve();
    },
  };
  return store;
}

/** One shape's measurement: the chosen candidate and each candidate's milliseconds per run. */
export interface TunedShape {
  choice: string;
  ms: Record<string, number>;
}

/** The tuning document: per adapter key, per shape key. */
export interface TuningDocument {
  version: 1;
  adapters: Record<string, Record<string, TunedShape>>;
}

/** Options of {@link MatmulTuner}. */
export interface MatmulTunerOptions {
  /** Progress lines ("tuning matmul ..."). @default none */
  log?: (message: string) => void;
}

/** Parses a shape key `NT 1024x576x1536` back into its parts. */
export function parseShapeKey(key: string) {
  const match = /^([NT])([NT]) (\d+)x(\d+)x(\d+)$/.exec(key);
  if (!match) throw new Error(`bad matmul shape key "${key}"`);
  const [, ta, tb, m, n, k] = match;
  return { transA: ta === "T", transB: tb === "T", m: +m, n: +n, k: +k };
}

/** The {@link KernelTuner} of the matmul, over one {@link TuningStore}. */
export class MatmulTuner implements KernelTuner {
  readonly store: TuningStore;
  #doc: TuningDocument;
  #pending = new Set<string>();
  #log: (message: string) => void;

  private constructor(store: TuningStore, doc: TuningDocument, log = noop) {
    this.store = store;
    this.#doc = doc;
    this.#log = log;
  }

  /** Opens the store's document (a missing or unreadable one starts empty). */
  static async open(
    store: TuningStore,
    options: MatmulTunerOptions = {},
  ): Promise<MatmulTuner> {
    let doc: TuningDocument = { version: 1, adapters: {} };
    const text = await store.load();
    if (text !== undefined) {
      try {
        const parsed = JSON.parse(text);
        if (parsed?.version === 1 && typeof parsed.adapters === "object") doc = parsed;
      } catch {
        // A damaged cache is re-measured and replaced.
      }
    }
    return new MatmulTuner(store, doc, options.log);
  }

  /** The measured shapes of the adapter `ctx` runs on. */
  table(ctx: GpuContext): Readonly<Record<string, TunedShape>> {
    return this.#doc.adapters[adapterKeyOf(ctx)] ?? {};
  }

  choose(ctx: GpuContext, key: string): string | undefined {
    const known = this.table(ctx)[key]?.choice;
    if (known === undefined) this.#pending.add(key);
    return known;
  }

  async flush(ctx: GpuContext): Promise<void> {
    if (this.#pending.size === 0) return;
    const keys = [...this.#pending];
    this.#pending.clear();
    await this.tune(ctx, keys);
  }

  /** Times every candidate on each shape key, records the fastest and saves the document. */
  async tune(ctx: GpuContext, keys: string[]): Promise<Record<string, TunedShape>> {
    const results: Record<string, TunedShape> = {};
    this.#log(`tuning matmul for ${ctx.adapterName}: ${keys.length} shapes (once per adapter)`);
    for (const [i, key] of keys.entries()) {
      // A fresh scratch context per shape: a destroyed one is not reused (its buffers are gone).
      const scratch = new GpuContext(ctx.gpu, { layouts: "hardware" });
      try {
        const { m, n, k, transA, transB } = parseShapeKey(key);
        const a = scratch.alloc("activations", m * k), b = scratch.alloc("activations", k * n);
        const out = scratch.alloc("activations", m * n);
        const ms: Record<string, number> = {};
        const reps = Math.min(50, Math.max(2, Math.ceil(4e9 / (2 * m * n * k + 1))));
        for (const t of candidatesFor(scratch)) {
          const run = () => matmul(scratch, out, a, b, m, n, k, { transA, transB }, t);
          run(); // compiles and binds
          await scratch.finish();
          const start = performance.now();
          for (let r = 0; r < reps; r++) run();
          await scratch.finish();
          ms[tiledName(t)] = (performance.now() - start) / reps;
        }
        const choice = Object.entries(ms).sort((x, y) => x[1] - y[1])[0]?.[0];
        if (choice) results[key] = { choice, ms };
        this.#log(`tuning matmul ${i + 1}/${keys.length}: ${key} -> ${choice}`);
      } finally {
        scratch.destroy();
      }
    }
    const table = this.#doc.adapters[adapterKeyOf(ctx)] ??= {};
    Object.assign(table, results);
    await this.store.save(JSON.stringify(this.#doc, null, 1) + "\n");
    return results;
  }
}

const noop = (_message: string) => {};

/** The adapter's identity in the document: vendor, architecture, device and driver. */
export function adapterKeyOf(ctx: GpuContext): string {
  return ctx.gpu.adapterKey ?? ctx.adapterName;
}
