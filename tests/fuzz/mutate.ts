/**
 * Seeded mutations of a valid file: byte-level (flip, overwrite, truncate, insert, delete,
 * duplicate) and, for JSON (a whole file or a safetensors header), structural (a value replaced
 * by a hostile one, a key removed or added, a container emptied). One seed, one mutant.
 */

import { seededRandom } from "../../src/data/sampler.ts";

/** Hostile JSON values: huge, negative, fractional, wrong type, non-finite spelled as strings. */
const HOSTILE: unknown[] = [
  0,
  -1,
  1,
  2 ** 31,
  2 ** 40,
  1e12,
  1e300,
  -1e12,
  0.5,
  1e8,
  1e6,
  1e9,
  "x",
  "",
  "NaN",
  "F99",
  null,
  true,
  [],
  {},
  [1e12],
  [-1, 2],
  "a".repeat(10_000),
  { "": 1 },
  [0, 1e15],
];

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);

function mutateBytes(bytes: Uint8Array, r: Rand): Uint8Array {
  const out = bytes.slice();
  const at = int(r, Math.max(1, bytes.length));
  switch (int(r, 6)) {
    case 0: // flip a few bits
      for (let k = 0; k < 1 + int(r, 4); k++) out[int(r, out.length)] ^= 1 << int(r, 8);
      return out;
    case 1: // overwrite a byte with a meaningful one
      out[at] = [0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, 0x39, 0x2d, 0x2c][int(r, 10)];
      return out;
    case 2: // truncate
      return bytes.slice(0, at);
    case 3: { // insert random bytes
      const extra = Uint8Array.from({ length: 1 + int(r, 16) }, () => int(r, 256));
      return new Uint8Array([...bytes.subarray(0, at), ...extra, ...bytes.subarray(at)]);
    }
    case 4: // delete a run
      return new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + 1 + int(r, 32))]);
    default: { // duplicate a run
      const run = bytes.subarray(at, at + 1 + int(r, 64));
      return new Uint8Array([...bytes.subarray(0, at), ...run, ...bytes.subarray(at)]);
    }
  }
}

/** Every [container, key] of a JSON value, depth first. */
function slots(value: unknown, out: Array<[Record<string, unknown> | unknown[], string | number]>) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([value, i]);
      slots(v, out);
    });
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push([value as Record<string, unknown>, k]);
      slots(v, out);
    }
  }
  return out;
}

/** A structural mutant of a JSON value (a copy). */
export function mutateJson(value: unknown, r: Rand): unknown {
  const copy = structuredClone(value);
  const all = slots(copy, []);
  if (all.length === 0) return HOSTILE[int(r, HOSTILE.length)];
  for (let k = 0; k < 1 + int(r, 2); k++) {
    const [container, key] = all[int(r, all.length)];
    const c = container as Record<string | number, unknown>;
    switch (int(r, 4)) {
      case 0:
        if (Array.isArray(container)) container.splice(key as number, 1);
        else delete c[key];
        break;
      case 1: // a copy of another slot's value
        c[key] = structuredClone(
          (all[int(r, all.length)][0] as Record<string, unknown>)[
            all[int(r, all.length)][1] as string
          ] ?? null,
        );
        break;
      default:
        c[key] = HOSTILE[int(r, HOSTILE.length)];
    }
  }
  return copy;
}

/** Re-encodes a safetensors file with its JSON header mutated (the length prefix kept right). */
function mutateSafetensorsHeader(bytes: Uint8Array, r: Rand): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const text = new TextEncoder().encode(JSON.stringify(mutateJson(header, r)));
  const out = new Uint8Array(8 + text.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(bytes.subarray(8 + n), 8 + text.length);
  return out;
}

/** How a file of a kind is mutated. */
export type Shape = "binary" | "json" | "safetensors";

/** The mutant of `bytes` for `seed`. */
export function mutate(bytes: Uint8Array, shape: Shape, seed: number): Uint8Array {
  const r = seededRandom(seed * 7919 + 1);
  const structural = shape !== "binary" && r() < 0.6;
  if (!structural) return mutateBytes(bytes, r);
  if (shape === "safetensors") return mutateSafetensorsHeader(bytes, r);
  const text = new TextDecoder().decode(bytes);
  // JSONL: one line's object mutated.
  if (text.includes("\n") && !text.trimStart().startsWith("{\n") && !text.startsWith("[")) {
    const lines = text.split("\n");
    const i = int(r, lines.filter((l) => l.trim()).length);
    lines[i] = JSON.stringify(mutateJson(JSON.parse(lines[i]), r));
    return new TextEncoder().encode(lines.join("\n"));
  }
  return new TextEncoder().encode(JSON.stringify(mutateJson(JSON.parse(text), r), null, 1));
}
