/**
 * SPPO's win-rates through the data: each pair's `chosen_win_rate` and `rejected_win_rate`
 * (validated in ./fields.ts, carried on the examples) checked present where the loss reads them
 * and collated in the batch's row order, chosen rows then rejected (./collate.ts).
 *
 * @module
 */

import { DatasetError } from "./issues.ts";
import type { PreferenceExample } from "./types.ts";

/**
 * Throws a {@link DatasetError} (exit 2) naming the first example, by file and line, that has no
 * win-rates: the `sppo` loss needs them on every pair.
 */
export function assertWinRates(examples: readonly PreferenceExample[], what = "loss sppo"): void {
  const missing = examples.find((e) =>
    e.chosenWinRate === undefined || e.rejectedWinRate === undefined
  );
  if (!missing) return;
  throw new DatasetError(
    `${missing.file}:${missing.line}: ${what} reads each pair's chosen_win_rate and ` +
      "rejected_win_rate (numbers in [0, 1]) and this row has none: label the pairs with " +
      "win-rates (deno task sppo writes them) or choose another --loss-type",
  );
}

/**
 * The win-rates of a batch's sequences (2P): the chosen completions' then the rejected ones', as
 * {@link collatePreference} orders the rows. Undefined when any example has none.
 *
 * @example
 * ```ts
 * collateWinRates([{ ...pair, chosenWinRate: 0.75, rejectedWinRate: 0.25 }]); // [0.75, 0.25]
 * ```
 */
export function collateWinRates(
  examples: ReadonlyArray<Pick<PreferenceExample, "chosenWinRate" | "rejectedWinRate">>,
): Float64Array | undefined {
  const P = examples.length;
  const out = new Float64Array(2 * P);
  for (let i = 0; i < P; i++) {
    const { chosenWinRate, rejectedWinRate } = examples[i];
    if (chosenWinRate === undefined || rejectedWinRate === undefined) return undefined;
    out[i] = chosenWinRate;
    out[P + i] = rejectedWinRate;
  }
  return out;
}
