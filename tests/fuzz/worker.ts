/// <reference lib="deno.worker" />
/**
 * Runs fuzz cases of one kind in a worker, so that the test can end a case that hangs: it
 * receives {kind, from, to} and posts one {seed, outcome, message, ms} per case.
 */

import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { classify, KINDS, seedFiles } from "./kinds.ts";
import { mutate } from "./mutate.ts";

const files = await seedFiles();

self.onmessage = async (event: MessageEvent<{ kind: string; from: number; to: number }>) => {
  const kind = KINDS.find((k) => k.name === event.data.kind)!;
  for (let seed = event.data.from; seed < event.data.to; seed++) {
    const store = new MemoryFileStore({
      ...files,
      [kind.file]: mutate(files[kind.file], kind.shape, seed),
    }, {
      copy: false,
    });
    const start = performance.now();
    let result: { outcome: string; message: string };
    try {
      await kind.load(store);
      result = { outcome: "loaded", message: "" };
    } catch (error) {
      result = classify(error, kind);
    }
    self.postMessage({ seed, ...result, ms: performance.now() - start });
  }
  self.postMessage({ done: true });
};
self.postMessage({ ready: true });
