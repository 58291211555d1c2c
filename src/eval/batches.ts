/**
 * How a run's examples fell into batches, and where a partial batch sits: each epoch's last
 * batch holds `examples mod batchSize` examples unless TRL's `dataloader_drop_last` drops it. A
 * step built on that batch averages its loss over fewer examples and its gradient is noisier, so
 * the report says so and marks the step, where a curve jumps at the end.
 *
 * @module
 */

/** The batching of a training run, recorded in its manifest (`results.batches`). */
export interface BatchLayout {
  /** Training examples in one epoch (pairs for preference training). */
  examples: number;
  /** Examples per micro-batch (`per_device_train_batch_size`). */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  gradientAccumulationSteps: number;
  /** Whether each epoch's partial last batch is dropped (TRL's `dataloader_drop_last`). */
  dropLast: boolean;
  /** Optimizer steps of the run. */
  steps: number;
  /** What an example is called in messages. @default "examples" */
  unit?: string;
}

/** A partial batch: how many examples it holds and the optimizer steps (from 1) that use it. */
export interface PartialBatch {
  /** Examples in the partial batch. */
  size: number;
  /** Steps whose micro-batches include it, ascending. */
  steps: number[];
  /** True when the dataset is smaller than one batch, so every batch is this partial one. */
  everyBatch: boolean;
}

/**
 * The partial batch of a layout, or undefined when every batch is full (the examples divide
 * into batches, or the partial one is dropped).
 *
 * @example
 * ```ts
 * partialBatch({ examples: 3009, batchSize: 16, gradientAccumulationSteps: 1, dropLast: false, steps: 189 });
 * // { size: 1, steps: [189], everyBatch: false }
 * ```
 */
export function partialBatch(layout: BatchLayout): PartialBatch | undefined {
  const { examples, batchSize, dropLast, steps } = layout;
  const ga = Math.max(1, layout.gradientAccumulationSteps);
  const size = examples % batchSize;
  if (dropLast || size === 0 || examples <= 0 || batchSize <= 0) return undefined;
  const perEpoch = Math.ceil(examples / batchSize);
  if (perEpoch === 1) {
    return { size, steps: Array.from({ length: steps }, (_, i) => i + 1), everyBatch: true };
  }
  // Global micro-batch m (from 0) is the last of its epoch when m mod perEpoch = perEpoch - 1.
  const marked = new Set<number>();
  for (let m = perEpoch - 1; m < steps * ga; m += perEpoch) marked.add(Math.floor(m / ga) + 1);
  return { size, steps: [...marked], everyBatch: false };
}

/** Steps listed for people: all of a few, else the first three, an ellipsis and the last. */
function stepList(steps: number[]): string {
  if (steps.length <= 4) return steps.join(", ");
  return `${steps.slice(0, 3).join(", ")}, …, ${steps.at(-1)}`;
}

/**
 * What to say about the partial batch of a layout, or undefined when every batch is full: for a
 * terminal one short line; for the report (`charts`) why a curve may jump there and where the
 * charts mark it.
 *
 * @param options.charts the report's longer text, pointing at the charts' marks. @default false
 */
export function partialBatchNote(
  layout: BatchLayout,
  options: { charts?: boolean } = {},
): string | undefined {
  const partial = partialBatch(layout);
  if (!partial) return undefined;
  const unit = layout.unit ?? "examples";
  const { examples, batchSize } = layout;
  if (partial.everyBatch) {
    return `the ${examples} training ${unit} are fewer than one batch (${batchSize}): every ` +
      `step trains on all ${examples}`;
  }
  const full = Math.floor(examples / batchSize);
  const where = `${partial.steps.length === 1 ? "step" : "steps"} ${stepList(partial.steps)}`;
  const counts = `${partial.size} of ${batchSize} ${unit} ` +
    `(${examples} = ${full} × ${batchSize} + ${partial.size})`;
  if (!options.charts) {
    return `last batch of each epoch is partial: ${counts}, at ${where}; ` +
      "--dataloader-drop-last drops it";
  }
  return `The last batch of each epoch is partial: ${counts}, used at ${where}. Loss and ` +
    `gradient norm there rest on fewer ${unit}, so a curve may jump at ` +
    `${partial.steps.length === 1 ? "that step" : "those steps"} (the red dashed line on the ` +
    "charts); --dataloader-drop-last drops that batch.";
}
