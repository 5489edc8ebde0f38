import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { FlagError, KERNEL_PRESET_NAMES, kernelPreset, parseFlagAssignments } from "@nestvisor/hypervisor";
import { KVM_MODEL } from "./kvm-model";
import { loadModel, ModelLoadError } from "./load-model";
import type { ModelFactory } from "./model";
import { formatJunit } from "./report-junit";
import { formatTap } from "./report-tap";
import { formatGroupLine, formatTextReport } from "./report-text";
import {
  DEFAULT_SEED,
  exitCodeOf,
  type ProgressEvent,
  type RunOptions,
  runSuites,
  selectGroups,
} from "./runner";
import { SUITES } from "./suites";

/** Where the command writes; the bin passes the process's streams, tests capture them. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly cwd: string;
}

export const USAGE = `Usage: nestvisor-test-suite [options]

Runs the conformance suites (kvm-unit-tests' access, vmx, vmx_tests cases and our own properties)
against a hypervisor model: the project's KVM model by default, or a module given with --model.

Options:
  --model <module>      a JavaScript module exporting a model factory or a hypervisor ModelSpec
                        (what nestvisor --model takes; see examples/models/README.md); a ModelSpec's
                        own preset and flags take precedence over --preset and --flag
  --preset <name>       kernel preset the suites run under (default v6.12): ${KERNEL_PRESET_NAMES.join(", ")}
  --flag <name=on|off>  override one flag of the preset (repeatable; also a,b=off lists)
  --filter <regex>      run only the case groups whose id (suite/group) matches
  --list                list the case groups and their case counts, run nothing (with --json:
                        a JSON array of { id, suite, group, cases, description, skip? })
  --full                the exhaustive matrices instead of the fast default's samples
  --seed <n>            seed of the random workloads and samples (default ${DEFAULT_SEED})
  --tap                 TAP version 14 on stdout instead of the text report (not with --list)
  --junit <file>        also write a JUnit XML report to <file> (not with --list)
  --json                the report (or the --list listing) as JSON on stdout
  --quiet               no progress on stderr
  -h, --help            this text

Exit status: 0 when nothing failed, 1 when a case group failed (FAIL or XPASS), 2 for bad usage.`;

interface Parsed {
  readonly model?: string;
  readonly preset: string;
  readonly flags: Readonly<Record<string, boolean>>;
  readonly filter?: RegExp;
  readonly list: boolean;
  readonly full: boolean;
  readonly seed: number;
  readonly tap: boolean;
  readonly junit?: string;
  readonly json: boolean;
  readonly quiet: boolean;
  readonly help: boolean;
}

/** A command-line mistake: printed with the usage hint, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function parseCommandLine(argv: readonly string[]): Parsed {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const preset = values.preset ?? "v6.12";
  try {
    kernelPreset(preset);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const flags: Record<string, boolean> = {};
  for (const text of values.flag ?? []) {
    try {
      for (const [name, value] of Object.entries(parseFlagAssignments(text))) {
        if (name in flags) throw new FlagError(`flag "${name}" is given more than once`);
        flags[name] = value as boolean;
      }
    } catch (error) {
      throw new UsageError(`--flag ${text}: ${(error as Error).message}`);
    }
  }
  let filter: RegExp | undefined;
  if (values.filter !== undefined) {
    try {
      filter = new RegExp(values.filter);
    } catch (error) {
      throw new UsageError(`--filter ${values.filter}: ${(error as Error).message}`);
    }
  }
  let seed = DEFAULT_SEED;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new UsageError(`--seed ${values.seed}: expected an integer in [0, 2^32)`);
  }
  if (values.tap && values.json) throw new UsageError("--tap and --json both write to stdout: choose one");
  if (values.list && values.tap)
    throw new UsageError("--list prints no TAP report: use --list or --list --json");
  if (values.list && values.junit !== undefined)
    throw new UsageError("--list writes no JUnit report: drop --junit or --list");
  return {
    ...(values.model === undefined ? {} : { model: values.model }),
    preset,
    flags,
    ...(filter === undefined ? {} : { filter }),
    list: values.list ?? false,
    full: values.full ?? false,
    seed,
    tap: values.tap ?? false,
    ...(values.junit === undefined ? {} : { junit: values.junit }),
    json: values.json ?? false,
    quiet: values.quiet ?? false,
    help: values.help ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      preset: { type: "string" },
      flag: { type: "string", multiple: true },
      filter: { type: "string" },
      list: { type: "boolean" },
      full: { type: "boolean" },
      seed: { type: "string" },
      tap: { type: "boolean" },
      junit: { type: "string" },
      json: { type: "boolean" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function progressLine(event: ProgressEvent): string | null {
  if (event.kind !== "end") return null;
  const width = String(event.total).length;
  const r = event.result;
  return `[${String(event.index + 1).padStart(width)}/${event.total}] ${formatGroupLine(r)} ${(r.ms / 1000).toFixed(2)} s\n`;
}

/** One entry of `--list --json`: a case group a run would execute. */
export interface ListedGroup {
  /** `suite/group`, as --filter matches it and the report names it. */
  readonly id: string;
  readonly suite: string;
  readonly group: string;
  readonly cases: number;
  readonly description: string;
  /** Why the group would be reported SKIP in this configuration. */
  readonly skip?: string;
}

/** The groups `options` selects, as `--list --json` prints them. */
export function listedGroups(options: RunOptions): ListedGroup[] {
  return selectGroups(options).map((g) => {
    const slash = g.id.indexOf("/");
    return {
      id: g.id,
      suite: g.id.slice(0, slash),
      group: g.id.slice(slash + 1),
      cases: g.cases,
      description: g.description,
      ...(g.skip === undefined ? {} : { skip: g.skip }),
    };
  });
}

function listing(options: RunOptions): string {
  const groups = listedGroups(options);
  const lines: string[] = [];
  const perSuite = new Map<string, { groups: number; cases: number }>();
  for (const g of groups) {
    lines.push(
      `${g.id.padEnd(40)} ${String(g.cases).padStart(10)}  ${g.skip === undefined ? g.description : `SKIP: ${g.skip}`}`,
    );
    const s = perSuite.get(g.suite) ?? { groups: 0, cases: 0 };
    s.groups++;
    s.cases += g.cases;
    perSuite.set(g.suite, s);
  }
  lines.push("");
  for (const [suite, s] of perSuite)
    lines.push(
      `${suite.padEnd(14)} ${String(s.groups).padStart(3)} groups ${String(s.cases).padStart(10)} cases`,
    );
  const total = groups.reduce((n, g) => n + g.cases, 0);
  lines.push(
    `${"total".padEnd(14)} ${String(groups.length).padStart(3)} groups ${String(total).padStart(10)} cases${options.full ? " (--full)" : ""}`,
  );
  return `${lines.join("\n")}\n`;
}

/** The command: parses `argv`, runs (or lists) the suites, writes the reports; returns the exit status. */
export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    io.stderr(`nestvisor-test-suite: ${(error as Error).message}\n(see --help)\n`);
    return 2;
  }
  if (parsed.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  let model: ModelFactory = KVM_MODEL;
  if (parsed.model !== undefined) {
    try {
      model = await loadModel(parsed.model, io.cwd, { preset: parsed.preset, flags: parsed.flags });
    } catch (error) {
      if (error instanceof ModelLoadError) {
        io.stderr(`nestvisor-test-suite: ${error.message}\n`);
        return 2;
      }
      throw error;
    }
  }
  const options: RunOptions = {
    model,
    suites: SUITES,
    preset: parsed.preset,
    flags: parsed.flags,
    ...(parsed.filter === undefined ? {} : { filter: parsed.filter }),
    full: parsed.full,
    seed: parsed.seed,
    ...(parsed.quiet
      ? {}
      : {
          onProgress: (event: ProgressEvent) => {
            const line = progressLine(event);
            if (line !== null) io.stderr(line);
          },
        }),
  };
  try {
    if (parsed.list) {
      io.stdout(parsed.json ? `${JSON.stringify(listedGroups(options), null, 2)}\n` : listing(options));
      return 0;
    }
    const report = runSuites(options);
    if (report.groups.length === 0) {
      io.stderr(`nestvisor-test-suite: no case group matches --filter ${parsed.filter?.source ?? ""}\n`);
      return 2;
    }
    if (parsed.junit !== undefined) writeFileSync(resolve(io.cwd, parsed.junit), formatJunit(report));
    if (parsed.tap) io.stdout(formatTap(report));
    else if (parsed.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout(formatTextReport(report));
    return exitCodeOf(report);
  } catch (error) {
    if (error instanceof FlagError) {
      io.stderr(`nestvisor-test-suite: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
