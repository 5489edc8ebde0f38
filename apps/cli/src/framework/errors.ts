/**
 * Exit codes and the errors that carry them. Every command ends in one of three ways (the issue's
 * contract, as in most Unix tools): 0 success, 1 a check that failed (or a bug), 2 bad usage —
 * an unknown option, a bad value, or an input file that cannot be read as what it should be.
 */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error meant for the user: its message is printed as one line, then the process exits. */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** Bad usage: arguments, option values, names, or input files that are not what they should be. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
    this.name = "UsageError";
  }
}

/** A check the command performs did not pass (the output says which). */
export class CheckFailedError extends CliError {
  constructor(message: string) {
    super(message, EXIT.FAILED);
    this.name = "CheckFailedError";
  }
}

/** The message of any thrown value, on one line. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, "; ").trim();
}
