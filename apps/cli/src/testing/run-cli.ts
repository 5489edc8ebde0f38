import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Test helper: runs the built `nestvisor` binary in a child process, as a user would. */

export const BINARY = resolve(import.meta.dirname, "../../dist/cli.js");

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly input?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

export function runCli(args: readonly string[], options: CliOptions = {}): CliResult {
  const env: Record<string, string | undefined> = {
    ...process.env,
    NO_COLOR: undefined,
    FORCE_COLOR: undefined,
    NESTVISOR_PROGRESS: undefined,
    ...options.env,
  };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const result = spawnSync(process.execPath, [BINARY, ...args], {
    input: options.input ?? "",
    encoding: "utf8",
    env: env as NodeJS.ProcessEnv,
    cwd: options.cwd ?? process.cwd(),
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Parses stdout as JSON, failing with the output when it is not. */
export function runJson(args: readonly string[], options: CliOptions = {}): unknown {
  const result = runCli(args, options);
  if (result.code !== 0)
    throw new Error(`nestvisor ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/** A fresh temporary directory holding `files` (name → text or bytes). */
export function tempFiles(files: Readonly<Record<string, string | Uint8Array>>): string {
  const dir = mkdtempSync(join(tmpdir(), "nestvisor-cli-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}
