import type { Example, PassthroughCommand, Writer } from "../framework/command";
import { exampleLines, wrapText } from "../framework/help";
import { OUTPUT_WIDTH } from "../framework/output";
import type { Style } from "../framework/style";
import { useBundledPackages } from "../model/bundled-packages";

/**
 * `nestvisor test [suite options]`: the conformance suite (`nestvisor-test-suite`, in
 * @nestvisor/test-suite) under the main command. The arguments go to the suite's own command
 * untouched and its exit code is ours (0 nothing failed, 1 a case group failed, 2 bad usage). The
 * suite is imported only when this command runs, so `nestvisor --version` does not load it. A
 * `--model` module's imports of the @nestvisor packages resolve to the binary's copies, as for run.
 */

const SUITE_PROGRAM = "nestvisor-test-suite";

const EXAMPLES: readonly Example[] = [
  { command: "nestvisor test", description: "every suite against the project's KVM model (v6.12)" },
  { command: "nestvisor test --list", description: "the case groups and how many cases each has" },
  {
    command: "nestvisor test --filter '^mmu/' --preset v5.3",
    description: "the MMU suite under the 2019 kernel",
  },
  {
    command: "nestvisor test --model examples/models/broken-root-cache.mjs --filter '^mmu/'",
    description: "a deliberately broken model: the suite names the bug",
  },
  { command: "nestvisor test --tap > suite.tap", description: "TAP for a CI test reporter" },
];

/** The suite's usage as `nestvisor test` prints it: our name for the program. */
function renamed(text: string, program: string): string {
  return text.replaceAll(SUITE_PROGRAM, `${program} test`);
}

/** Lines wider than the terminal limit wrapped, an option's description continuing under itself. */
function fitUsage(text: string): string {
  return text
    .split("\n")
    .flatMap((line) => {
      if (line.length <= OUTPUT_WIDTH) return [line];
      const option = /^(\s+\S.*?\s{2,})(\S.*)$/.exec(line);
      if (option === null) return wrapText(line, OUTPUT_WIDTH);
      return wrapText(option[2]!, OUTPUT_WIDTH, option[1]!.length, option[1]!);
    })
    .join("\n");
}

/**
 * The suite's stderr with our name in its messages ("nestvisor test: …"); its reports on stdout
 * (text, TAP, JSON) are passed through unchanged.
 */
function stderrWriter(writer: Writer, program: string): (text: string) => void {
  const prefix = new RegExp(`^${SUITE_PROGRAM}:`, "gm");
  return (text) => {
    writer.write(
      text.replace(prefix, `${program} test:`).replace(/\n\(see --help\)/, ` (see ${program} test --help)`),
    );
  };
}

export const testCommand: PassthroughCommand = {
  name: "test",
  summary: "run the conformance suites (kvm-unit-tests style) against the KVM model or a model module",
  passthrough: true,
  async help(program: string, style: Style) {
    const { USAGE } = await import("@nestvisor/test-suite");
    const usage = fitUsage(renamed(USAGE, program)).replace(/^Usage:/, style.bold("Usage:"));
    return `${usage}\n\n${style.bold("Examples:")}\n${exampleLines(EXAMPLES, style).join("\n")}\n`;
  },
  async run(argv, io) {
    const { runCommand } = await import("@nestvisor/test-suite");
    // A --model module's @nestvisor imports get the packages the suite runs with.
    useBundledPackages();
    const program = "nestvisor";
    return runCommand(argv, {
      stdout: (text) => {
        io.out.write(text);
      },
      stderr: stderrWriter(io.err, program),
      cwd: io.cwd,
    });
  },
};
