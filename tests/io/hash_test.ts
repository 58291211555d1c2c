import assert from "node:assert/strict";
import { fingerprintJson, sha256Hex, stableStringify } from "../../src/io/hash.ts";

Deno.test("sha256Hex matches the FIPS 180-2 test vectors", async () => {
  assert.equal(
    await sha256Hex(""),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  const bytes = new TextEncoder().encode(
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
  );
  assert.equal(
    await sha256Hex(bytes),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256Hex of a view hashes only the viewed bytes", async () => {
  const buffer = new TextEncoder().encode("xxabcxx");
  assert.equal(await sha256Hex(buffer.subarray(2, 5)), await sha256Hex("abc"));
});

Deno.test("stableStringify sorts keys at every depth and keeps array order", () => {
  const text = stableStringify({
    b: [3, { z: 1, a: 2 }],
    a: { d: null, c: "x" },
    10: true,
    9: false,
  });
  assert.equal(text, '{"10":true,"9":false,"a":{"c":"x","d":null},"b":[3,{"a":2,"z":1}]}');
});

Deno.test("stableStringify drops undefined members and writes non-finite numbers as null, like JSON", () => {
  assert.equal(
    stableStringify({ a: undefined, b: [undefined, NaN, Infinity], c: () => 1 }),
    '{"b":[null,null,null]}',
  );
  assert.equal(stableStringify({ when: new Date(0) }), '{"when":"1970-01-01T00:00:00.000Z"}');
  assert.equal(stableStringify(undefined), "null");
});

Deno.test("stableStringify refuses cycles and BigInt", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => stableStringify(cyclic), /cycle/);
  assert.throws(() => stableStringify({ n: 1n }), /BigInt/);
  // A repeated (non-cyclic) reference is fine.
  const shared = { x: 1 };
  assert.equal(stableStringify([shared, shared]), '[{"x":1},{"x":1}]');
});

Deno.test("fingerprintJson does not depend on key order but does on values", async () => {
  const a = await fingerprintJson({ beta: 0.1, loss: { type: "sigmoid", smoothing: 0 } });
  const b = await fingerprintJson({ loss: { smoothing: 0, type: "sigmoid" }, beta: 0.1 });
  const c = await fingerprintJson({ beta: 0.2, loss: { type: "sigmoid", smoothing: 0 } });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.match(a, /^[0-9a-f]{64}$/);
});
