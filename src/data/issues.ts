/**
 * Validation issues and the dataset report. Every problem with a row is reported as
 * `file:line: field: problem`, so a user can jump to it; a run stops on bad rows with the whole
 * list (tasks exit with code 2) unless the user chose to skip them.
 *
 * @module
 */

/** One problem found in one row of a dataset file. */
export interface ValidationIssue {
  /** The file as the user named it (or the shard inside a dataset folder). */
  file: string;
  /** 1-based line of a JSONL file, of the element's start in a JSON array, or Parquet row number. */
  line: number;
  /** The field the problem is in (`chosen`, `prompt[2].role`), or `row` for the whole row. */
  field: string;
  /** What is wrong, in words a user can act on. */
  problem: string;
}

/** Formats an issue as `file:line: field: problem`. */
export function formatIssue(issue: ValidationIssue): string {
  return `${issue.file}:${issue.line}: ${issue.field}: ${issue.problem}`;
}

/**
 * Formats a list of issues for a person: the first `limit` lines, then a count of the rest.
 *
 * @param limit how many issues to print in full. @default 20
 */
export function formatIssues(issues: readonly ValidationIssue[], limit = 20): string {
  const lines = issues.slice(0, limit).map(formatIssue);
  if (issues.length > limit) lines.push(`... and ${issues.length - limit} more`);
  return lines.join("\n");
}

/**
 * Raised when a dataset has invalid rows and the caller did not ask to skip them. Carries the full
 * list; tasks print {@link ValidationError.message} (first 20 and a count) and exit with
 * {@link ValidationError.exitCode}.
 */
export class ValidationError extends Error {
  /** Every issue found, in file order. */
  readonly issues: ValidationIssue[];
  /** The exit code a command-line task should end with: 2, bad input. */
  readonly exitCode = 2;

  /** An error listing `issues` (file:line and why each row is bad) of the dataset named `what`. */
  constructor(issues: ValidationIssue[], what = "dataset") {
    super(
      `${what} has ${issues.length} invalid row${issues.length === 1 ? "" : "s"}:\n` +
        `${formatIssues(issues)}\n` +
        "Fix the rows, or pass --skip-invalid to drop them (they are still reported).",
    );
    this.name = "ValidationError";
    this.issues = issues;
  }
}

/**
 * Counts of what happened to a dataset's rows, printed after loading and written into the run
 * manifest. `dropped` maps a reason (`invalid`, `too_long`, `empty_completion`,
 * `template_mismatch`) to a count; `truncated` counts kept rows that lost tokens.
 */
export interface DatasetReport {
  /** Rows read from the files (blank JSONL lines are not rows). */
  read: number;
  /** Rows that reached the end of the last step that ran. */
  kept: number;
  /** Dropped rows by reason. */
  dropped: Record<string, number>;
  /** Kept rows whose prompt or completion was shortened to fit the length limits. */
  truncated: number;
  /**
   * Rows whose tokenization of `prompt + completion` did not start with the tokens of the prompt,
   * so prompt and completion were tokenized apart and joined (as TRL does).
   */
  prefixMismatch: number;
}

/** An empty report for `read` rows, all kept. */
export function newReport(read: number): DatasetReport {
  return { read, kept: read, dropped: {}, truncated: 0, prefixMismatch: 0 };
}

/** Records `count` rows dropped for `reason`. */
export function addDropped(report: DatasetReport, reason: string, count = 1): void {
  if (count === 0) return;
  report.dropped[reason] = (report.dropped[reason] ?? 0) + count;
  report.kept -= count;
}

/** One line per count, e.g. for stderr: `read 120, kept 117, dropped 3 (too_long 2, invalid 1)`. */
export function formatReport(report: DatasetReport): string {
  const reasons = Object.entries(report.dropped).filter(([, n]) => n > 0);
  const droppedTotal = reasons.reduce((sum, [, n]) => sum + n, 0);
  let line = `read ${report.read}, kept ${report.kept}, dropped ${droppedTotal}`;
  if (reasons.length > 0) line += ` (${reasons.map(([r, n]) => `${r} ${n}`).join(", ")})`;
  line += `, truncated ${report.truncated}`;
  if (report.prefixMismatch > 0) {
    line += `, tokenized apart ${report.prefixMismatch} (prompt+completion split a token)`;
  }
  return line;
}

/** A dataset that cannot be used as a whole (no rows, no format, nothing left); exit code 2. */
export class DatasetError extends Error {
  /** The exit code a command-line task should end with: 2, bad input. */
  readonly exitCode = 2;
  /** An error whose message names the dataset and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}
