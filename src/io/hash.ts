/**
 * Fingerprints for models, datasets and run options: SHA-256 through Web Crypto
 * (`crypto.subtle.digest`), which Deno, browsers and edge workers all provide, and a canonical
 * JSON form with sorted keys so that `{a, b}` and `{b, a}` fingerprint alike.
 *
 * @module
 */

/**
 * SHA-256 of bytes or of a string's UTF-8 encoding, as 64 lowercase hex digits.
 *
 * @example
 * ```ts
 * await sha256Hex("abc"); // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 */
export async function sha256Hex(input: Uint8Array | string): Promise<string> {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  // digest() wants a BufferSource backed by an ArrayBuffer; copy views of shared buffers.
  const source = bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : bytes.slice();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/**
 * Canonical JSON text of a value: object keys sorted by UTF-16 code units (as Python's
 * `json.dumps(value, sort_keys=True, separators=(",", ":"))` sorts ASCII keys), no whitespace,
 * otherwise as `JSON.stringify`: `toJSON` honoured, undefined/function/symbol members dropped
 * (null inside arrays), non-finite numbers written as null.
 *
 * @throws {TypeError} on cycles or BigInt, as `JSON.stringify` does.
 */
export function stableStringify(value: unknown): string {
  return canonical(value, new Set()) ?? "null";
}

function canonical(value: unknown, ancestors: Set<object>): string | undefined {
  if (
    typeof value === "object" && value !== null &&
    typeof (value as { toJSON?: unknown }).toJSON === "function"
  ) {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") return Number.isFinite(value) ? JSON.stringify(value) : "null";
  if (typeof value === "bigint") {
    throw new TypeError("stableStringify: BigInt cannot be serialised to JSON");
  }
  if (typeof value !== "object") return undefined; // undefined, function, symbol
  if (ancestors.has(value)) throw new TypeError("stableStringify: value contains a cycle");
  ancestors.add(value);
  let text: string;
  if (Array.isArray(value)) {
    text = `[${value.map((item) => canonical(item, ancestors) ?? "null").join(",")}]`;
  } else {
    // Integer-like keys would come first in a JS object whatever their order: sort explicitly.
    const members: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const item = canonical((value as Record<string, unknown>)[key], ancestors);
      if (item !== undefined) members.push(`${JSON.stringify(key)}:${item}`);
    }
    text = `{${members.join(",")}}`;
  }
  ancestors.delete(value);
  return text;
}

/**
 * SHA-256 hex of the canonical JSON of a value: a stable fingerprint of options, configs and
 * manifests, independent of key order.
 *
 * @example
 * ```ts
 * (await fingerprintJson({ b: 1, a: 2 })) === (await fingerprintJson({ a: 2, b: 1 })); // true
 * ```
 */
export function fingerprintJson(value: unknown): Promise<string> {
  return sha256Hex(stableStringify(value));
}
