/**
 * The kernel tuner: times the candidates of every tuned kernel family (the tiled matmul, the
 * flash attention tiles, the fused LM head's vocabulary chunk; src/gpu/tuning_families.ts) on
 * the shapes a run actually records, once per adapter and shape, and keeps the fastest in a small
 * JSON document ({@link TuningStore}: a file under the user's cache folder from the tasks, memory
 * in a browser). Shapes are noted as they are first recorded (or planned) and timed at the next
 * `GpuContext.finish`, on a sibling context of the same device (so the run's arenas do not grow);
 * every family's candidates give identical bits, so switching after tuning changes speed only.
 *
 * @module
 */

import { GpuContext, type KernelTuner } from "./context.ts";
import { TUNED_FAMILIES } from "./tuning_families.ts";

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
  /** The fastest candidate's name. */
  choice: string;
  /** Milliseconds per run, by candidate name. */
  ms: Record<string, number>;
}

/** The tuning document: per adapter key, per shape key. */
export interface TuningDocument {
  /** The document's format. */
  version: 1;
  /** Per adapter key ({@link adapterKeyOf}), per shape key, the measurement. */
  adapters: Record<string, Record<string, TunedShape>>;
}

/**
 * One tuned kernel family: which shape keys are its own, and how to run each candidate of a key.
 * Every candidate of a family must give the same bits.
 */
export interface TunerFamily {
  /** The family's name in progress lines (where its keys do not start with it). */
  readonly name: string;
  /** The form of its keys, for messages (e.g. `NT 1024x576x1536`). */
  readonly example: string;
  /** Whether a shape key is this family's (and well formed). */
  owns(key: string): boolean;
  /** Allocates the inputs of `key` on `scratch` and returns one recorder per candidate name. */
  prepare(scratch: GpuContext, key: string): Map<string, () => void>;
}

/** Options of {@link Tuner}. */
export interface TunerOptions {
  /** Progress lines ("tuning ..."). @default none */
  log?: (message: string) => void;
  /** The families tuned. @default all of src/gpu/tuning_families.ts */
  families?: readonly TunerFamily[];
  /** Milliseconds of work timed per candidate, at least two runs. @default 50 */
  targetMs?: number;
}

/** The {@link KernelTuner} of the tuned kernel families, over one {@link TuningStore}. */
export class Tuner implements KernelTuner {
  readonly store: TuningStore;
  readonly families: readonly TunerFamily[];
  #doc: TuningDocument;
  #pending = new Set<string>();
  #log: (message: string) => void;
  #targetMs: number;

  private constructor(store: TuningStore, doc: TuningDocument, options: TunerOptions) {
    this.store = store;
    this.#doc = doc;
    this.#log = options.log ?? noop;
    this.families = options.families ?? TUNED_FAMILIES;
    this.#targetMs = options.targetMs ?? 50;
  }

  /** Opens the store's document (a missing or unreadable one starts empty). */
  static async open(store: TuningStore, options: TunerOptions = {}): Promise<Tuner> {
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
    return new Tuner(store, doc, options);
  }

  /** The family that owns a shape key, or undefined. */
  familyOf(key: string): TunerFamily | undefined {
    return this.families.find((f) => f.owns(key));
  }

  /** The measured shapes of the adapter `ctx` runs on. */
  table(ctx: GpuContext): Readonly<Record<string, TunedShape>> {
    return this.#doc.adapters[adapterKeyOf(ctx)] ?? {};
  }

  choose(ctx: GpuContext, key: string): string | undefined {
    const known = this.table(ctx)[key]?.choice;
    if (known === undefined && this.familyOf(key)) this.#pending.add(key);
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
    this.#log(`tuning kernels for ${ctx.adapterName}: ${keys.length} shapes (once per adapter)`);
    for (const [i, key] of keys.entries()) {
      const family = this.familyOf(key);
      if (!family) throw new Error(`no tuned kernel has the shape key "${key}"`);
      // A fresh scratch context per shape: a destroyed one is not reused (its buffers are gone).
      const scratch = new GpuContext(ctx.gpu, {
        layouts: "hardware",
        maxBindingBytes: ctx.maxBindingElements * 4,
        maxBufferBytes: ctx.maxBufferBytes,
        f16Mode: ctx.f16Mode,
      });
      try {
        const ms: Record<string, number> = {};
        for (const [name, run] of family.prepare(scratch, key)) {
          run(); // compiles and binds
          await scratch.finish();
          let start = performance.now();
          run();
          await scratch.finish();
          const once = performance.now() - start;
          const reps = Math.min(50, Math.max(2, Math.ceil(this.#targetMs / Math.max(once, 1e-3))));
          start = performance.now();
          for (let r = 0; r < reps; r++) run();
          await scratch.finish();
          ms[name] = (performance.now() - start) / reps;
        }
        const choice = Object.entries(ms).sort((x, y) => x[1] - y[1])[0]?.[0];
        if (choice) results[key] = { choice, ms };
        const label = key.startsWith(`${family.name} `) ? key : `${family.name} ${key}`;
        this.#log(`tuning ${i + 1}/${keys.length}: ${label} -> ${choice}`);
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
