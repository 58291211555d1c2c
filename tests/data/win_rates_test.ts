/**
 * SPPO's win-rates through the data: validated per row (both or neither, finite, in [0, 1]),
 * carried through tokenization, collated chosen-then-rejected, and required row by row when the
 * loss reads them.
 */

import assert from "node:assert/strict";
import { formatIssue } from "../../src/data/issues.ts";
import { readRecords } from "../../src/data/read.ts";
import { validateRecords } from "../../src/data/validate.ts";
import { tokenizePreference } from "../../src/data/tokenize.ts";
import { assertWinRates, collateWinRates } from "../../src/data/win_rates.ts";
import type { PreferenceExample } from "../../src/data/types.ts";
import { fixtureTokenizer, jsonl } from "./helpers.ts";

const ids = { prompt_input_ids: [1, 2], chosen_input_ids: [3], rejected_input_ids: [4] };

Deno.test("win-rates are validated: both or neither, numbers in [0, 1]", async () => {
  const records = await readRecords(
    new TextEncoder().encode(jsonl([
      { ...ids, chosen_win_rate: 0.75, rejected_win_rate: 0.25 },
      { ...ids, chosen_win_rate: 0.75 },
      { ...ids, rejected_win_rate: 0 },
      { ...ids, chosen_win_rate: 1.5, rejected_win_rate: 0.2 },
      { ...ids, chosen_win_rate: "0.5", rejected_win_rate: 0.2 },
      { ...ids, chosen_win_rate: 0.5, rejected_win_rate: -0.01 },
      ids,
    ])),
    "w.jsonl",
  );
  const { issues, rows } = validateRecords(records, "preference");
  assert.deepEqual(issues.map(formatIssue), [
    "w.jsonl:2: rejected_win_rate: missing (chosen_win_rate is given: give both or neither)",
    "w.jsonl:3: chosen_win_rate: missing (rejected_win_rate is given: give both or neither)",
    "w.jsonl:4: chosen_win_rate: expected a win-rate in [0, 1], got 1.5",
    "w.jsonl:5: chosen_win_rate: expected a number, got a string",
    "w.jsonl:6: rejected_win_rate: expected a win-rate in [0, 1], got -0.01",
  ]);
  assert.deepEqual(
    rows.map((r) => [r.line, r.chosenWinRate, r.rejectedWinRate]),
    [[1, 0.75, 0.25], [7, undefined, undefined]],
  );
  // A row without win-rates keeps exactly its old shape (no new keys).
  assert.equal("chosenWinRate" in rows[1], false);
});

Deno.test("text rows carry their win-rates through tokenization", async () => {
  const records = await readRecords(
    new TextEncoder().encode(jsonl([
      {
        prompt: "hi",
        chosen: " yes",
        rejected: " no",
        chosen_win_rate: 0.6,
        rejected_win_rate: 0.1,
      },
    ])),
    "s.jsonl",
  );
  const { rows, issues } = validateRecords(records, "preference");
  assert.deepEqual(issues, []);
  const { examples } = tokenizePreference(rows, await fixtureTokenizer());
  assert.equal(examples[0].chosenWinRate, 0.6);
  assert.equal(examples[0].rejectedWinRate, 0.1);
});

const example = (line: number, w?: [number, number]): PreferenceExample => ({
  file: "p.jsonl",
  line,
  promptIds: [1],
  chosenIds: [2],
  rejectedIds: [3],
  ...(w ? { chosenWinRate: w[0], rejectedWinRate: w[1] } : {}),
});

Deno.test("collateWinRates orders chosen then rejected, as the batch rows", () => {
  const w = collateWinRates([example(1, [0.9, 0.2]), example(2, [0.6, 0.4]), example(3, [1, 0])]);
  assert.deepEqual(Array.from(w!), [0.9, 0.6, 1, 0.2, 0.4, 0]);
  assert.equal(collateWinRates([example(1, [0.9, 0.2]), example(2)]), undefined);
});

Deno.test("assertWinRates names the first row without win-rates, exit code 2", () => {
  assertWinRates([example(1, [0.5, 0.5])]);
  assert.throws(
    () => assertWinRates([example(1, [0.5, 0.5]), example(7), example(9)]),
    (e: Error & { exitCode?: number }) =>
      e.exitCode === 2 &&
      /^p\.jsonl:7: loss sppo reads each pair's chosen_win_rate/.test(e.message),
  );
});
