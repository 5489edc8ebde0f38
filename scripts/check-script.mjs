// What the repository's check scripts (check-changesets, check-package) share: their two error
// kinds, the test-file pattern they agree on, and the entry point that turns them into exit codes:
// 0 passed, 1 a check failed or could not run, 2 bad usage (one line on stderr).

/** A command-line mistake: one line on stderr, exit status 2. */
export class UsageError extends Error {}
/** A check that cannot go on (an unreadable file, a failing git or pnpm): exit status 1. */
export class CheckFailure extends Error {}

/** Test, spec and bench sources, which no published package may ship. */
export const TEST_FILE = /(?:^|\/)(?:__tests__\/|[^/]+\.(?:test|spec|bench)\.[cm]?[jt]sx?$)/;

/**
 * Runs a check script: parses the arguments, prints the usage for -h/--help, runs the check and
 * returns its exit status. `failureLines` words a CheckFailure's message for stderr.
 * @param {{ name: string, usage: string, parseArgs: (argv: string[]) => { help: boolean },
 *   check: (options: any) => number, failureLines: (message: string) => string[] }} script
 */
export function runCheckScript(script) {
  try {
    const options = script.parseArgs(process.argv.slice(2));
    if (options.help) {
      console.log(script.usage);
      return 0;
    }
    return script.check(options);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${script.name}: ${error.message} (${script.usage})`);
      return 2;
    }
    if (error instanceof CheckFailure) {
      for (const line of script.failureLines(error.message)) console.error(line);
      return 1;
    }
    throw error;
  }
}
