/**
 * A policy folder against its reference folder: both loaded on one backend, the reference
 * evaluated against itself (its KL is 0) and the policy against the reference, on the same prompts
 * and seeds so that the samples line up side by side. What `deno task eval` and the pipeline's
 * eval stage run.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { loadTokenizer, readPrompts } from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { type FrozenDtypeChoice, frozenDtypeOf, readModelFolder } from "../model/model_folder.ts";
import { LlamaModel } from "../model/llama.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import { preparePreferenceSplit, type TokenOptions } from "../data/prepare.ts";
import {
  encodePrompts,
  evalCapacity,
  EvalInputError,
  evalTable,
  evaluateModel,
  type EvaluateOptions,
  type ModelEvaluation,
  sideBySide,
} from "./evaluate.ts";
import type { EvalTable, ReportSample } from "./report.ts";

/** Inputs of {@link evaluateFolders}. */
export interface FolderEvalOptions extends EvaluateOptions {
  /** Policy model folder (its tokenizer files are used). */
  model: string;
  /** Reference model folder. */
  refModel: string;
  /** Prompts file: JSONL with a "prompt" string per line. */
  prompts: string;
  /** Held-out preference pairs file (any format the dataset loader reads). */
  pairsFile?: string;
  /** Options that change token ids, as the models were trained with. */
  tokenOptions?: TokenOptions;
  /** Names of the two rows. @default ["reference", "model"] */
  names?: readonly [string, string];
  /**
   * `--frozen-dtype`: both models only read (frozen throughout), so each is held in its
   * checkpoint's bf16/f16 (auto: 2 bytes per element, widened in the kernels, the same results)
   * or widened to f32. @default "auto"
   */
  frozenDtype?: FrozenDtypeChoice;
}

/** Both evaluations and the report inputs made from them. */
export interface Comparison {
  /** The reference's evaluation. */
  reference: ModelEvaluation;
  /** The policy's evaluation. */
  policy: ModelEvaluation;
  /** The table of both, for the report. */
  evalTable: EvalTable;
  /** Samples of both side by side, for the report. */
  samples: ReportSample[];
}

/**
 * Loads the two folders on `backend` and evaluates the reference (against itself) and the
 * policy (against the reference) on the same prompts and seeds, so the samples line up.
 */
export async function evaluateFolders(
  store: FileStore,
  backend: Backend,
  options: FolderEvalOptions,
): Promise<Comparison> {
  const tokenizer = await loadTokenizer(store, options.model);
  const prompts = encodePrompts(tokenizer, await readPrompts(store, options.prompts));
  const pairs = options.pairsFile
    ? (await preparePreferenceSplit(
      store,
      { path: options.pairsFile },
      tokenizer,
      options.tokenOptions ?? {},
    )).examples
    : undefined;
  const evalOptions = { ...options, pairs };
  const capacity = evalCapacity(prompts, evalOptions);
  const load = async (dir: string) => {
    const loaded = await readModelFolder(store, dir);
    const { config, weights } = loaded;
    checkTokenRange(pairs ?? [], config.vocabSize, dir);
    const model = new LlamaModel(backend, config, {
      ...capacity,
      trainable: false,
      frozenDtype: frozenDtypeOf(loaded, options.frozenDtype),
    });
    model.params.writeAll(weights, { source: dir });
    return model;
  };
  const policyModel = await load(options.model);
  const referenceModel = await load(options.refModel);
  const [V, refV] = [policyModel.config.vocabSize, referenceModel.config.vocabSize];
  if (V !== refV) {
    throw new EvalInputError(
      `${options.refModel} has a vocabulary of ${refV} tokens and ${options.model} ${V}: ` +
        "the reference must share the policy's tokenizer (pass the model the policy was trained from)",
    );
  }
  const [refName, name] = options.names ?? ["reference", "model"];
  const named = (row: string): EvaluateOptions => ({
    ...evalOptions,
    onProgress: (stage, done, total) => options.onProgress?.(`${row}: ${stage}`, done, total),
  });
  const reference = await evaluateModel(
    referenceModel,
    referenceModel,
    tokenizer,
    prompts,
    named(refName),
  );
  const policy = await evaluateModel(policyModel, referenceModel, tokenizer, prompts, named(name));
  const entries = [[refName, reference], [name, policy]] as const;
  return { reference, policy, evalTable: evalTable(entries), samples: sideBySide(entries) };
}
