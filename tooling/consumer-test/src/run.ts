import { spawnSync } from "node:child_process";

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr together, trimmed: what to show when a step fails. */
  readonly output: string;
}

export interface RunOptions {
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Runs a program to completion without a shell; a program that cannot start is an error. */
export function run(command: string, args: readonly string[], options: RunOptions): RunResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (result.error) throw result.error;
  return {
    status: result.status ?? 1,
    stdout: result.stdout,
    stderr: result.stderr,
    output: `${result.stdout}${result.stderr}`.trim(),
  };
}

/** Like `run`, but a non-zero exit is an error carrying the command's output. */
export function runOk(command: string, args: readonly string[], options: RunOptions): RunResult {
  const result = run(command, args, options);
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} (in ${options.cwd}) exited ${result.status}:\n${result.output}`,
    );
  }
  return result;
}
