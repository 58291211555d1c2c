/**
 * The helpers' skip policy, run in a subprocess on tests/fixtures/needs_fixture.ts: a test whose
 * requirement is missing is reported as ignored with the reason, and fails where CI is set.
 */

import assert from "node:assert/strict";
import { assertRejects } from "./helpers.ts";

const FIXTURE = new URL("./fixtures/needs_fixture.ts", import.meta.url).pathname;

async function runFixture(ci: boolean) {
  // The child gets this environment without CI, plus CI=true when asked.
  const env = Deno.env.toObject();
  delete env.CI;
  const command = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", FIXTURE],
    env: { ...env, NO_COLOR: "1", DPO_SKIP_WEBGPU_PROBE: "1", ...(ci ? { CI: "true" } : {}) },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  return { code, text: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

Deno.test("a test whose requirement is missing is reported as ignored, with the reason", async () => {
  const { code, text } = await runFixture(false);
  assert.equal(code, 0, text);
  assert.match(text, /a test that needs a widget \.\.\. ignored/);
  assert.match(text, /ignoring "a test that needs a widget": needs a widget/);
  assert.match(text, /a test that needs nothing \.\.\. ok/);
  assert.match(text, /1 passed \| 0 failed \| 1 ignored/);
});

Deno.test("a test whose requirement is missing fails where CI is set", async () => {
  const { code, text } = await runFixture(true);
  assert.equal(code, 1, text);
  assert.match(text, /a test that needs a widget \.\.\. FAILED/);
  assert.match(text, /needs a widget, and CI is set/);
});

Deno.test("assertRejects checks the class and the message, and fails when nothing throws", async () => {
  const error = await assertRejects(Promise.reject(new RangeError("bad beta")), RangeError, "beta");
  assert.equal(error.message, "bad beta");
  await assert.rejects(assertRejects(Promise.resolve(1), Error), /nothing was thrown/);
  await assert.rejects(
    assertRejects(Promise.reject(new TypeError("x")), RangeError),
    /expected a RangeError/,
  );
  await assert.rejects(
    assertRejects(Promise.reject(new RangeError("bad lr")), RangeError, "beta"),
    /lacks beta/,
  );
});
