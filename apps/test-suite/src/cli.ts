#!/usr/bin/env node
// The `nestvisor-test-suite` command (issue 7): see `runCommand` and --help.
import { runCommand } from "./command";

process.exitCode = await runCommand(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  cwd: process.cwd(),
});
