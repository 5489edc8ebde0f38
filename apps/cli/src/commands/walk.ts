import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { describeRegister, PFERR_LAYOUT, summarizePageFaultErrorCode } from "@nestvisor/x86-arch";
import type { Command, CommandContext } from "../framework/command";
import { EXIT, UsageError } from "../framework/errors";
import { booleanOption, JSON_OPTION } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";
import { readTextFile } from "../model/files";
import {
  batchResult,
  parseScenario,
  runScenario,
  ScenarioError,
  type WalkOutcome,
} from "../model/walk-scenario";

const LEVEL_NAMES_WIDE = ["", "PTE", "PDE", "PDPTE", "PML4E", "PML5E"];
const LEVEL_NAMES_32 = ["", "PTE", "PDE"];

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message.replace(/^Unexpected/, "unexpected");
    throw new UsageError(`${where}: malformed JSON (${message})`);
  }
}

function entryFlags(value: bigint, level: number, wide: boolean): string {
  const flags: string[] = [];
  const bit = (n: number) => ((value >> BigInt(n)) & 1n) === 1n;
  if (!bit(0)) return "not present";
  flags.push("P");
  flags.push(bit(1) ? "W" : "RO");
  flags.push(bit(2) ? "U" : "S");
  if (bit(5)) flags.push("A");
  if (bit(6)) flags.push("D");
  if (level > 1 && bit(7)) flags.push("PS");
  if (bit(8)) flags.push("G");
  if (wide && bit(63)) flags.push("XD");
  return flags.join(" ");
}

function rights(pageAccess: number): string {
  return [
    pageAccess & 2 ? "write" : "read-only",
    pageAccess & 4 ? "user" : "supervisor-only",
    pageAccess & 1 ? "executable" : "no-execute",
  ].join(", ");
}

function describe(outcome: WalkOutcome, file: string, ctx: CommandContext): string[] {
  const s = ctx.style;
  const wide = outcome.entryBytes === 8;
  const names = wide ? LEVEL_NAMES_WIDE : LEVEL_NAMES_32;
  const digits = wide ? 16 : 8;
  const lines = [s.bold(`${file}: ${outcome.mode} paging walk`), ""];
  lines.push(
    ...renderTable(
      [
        { header: "level" },
        { header: "entry address", align: "right" },
        { header: "value", align: "right" },
        { header: "flags" },
      ],
      outcome.entries.map((e) => [
        e.address === null ? "PDPTE (register)" : (names[e.level] ?? `L${e.level}`),
        e.address === null ? "—" : `0x${e.address.toString(16)}`,
        `0x${e.value.toString(16).padStart(digits, "0")}`,
        entryFlags(e.value, e.level, wide),
      ]),
      { style: s },
    ),
    "",
  );
  if (outcome.fault) {
    const bits = describeRegister(PFERR_LAYOUT, outcome.errorCode)
      .map((f) => f.name)
      .join(" ");
    lines.push(
      s.red(
        `#PF, error code 0x${outcome.errorCode.toString(16)} (${bits || "none"}): ${summarizePageFaultErrorCode(outcome.errorCode)}`,
      ),
    );
  } else {
    const size =
      outcome.pageSize >= 1 << 30
        ? `${outcome.pageSize / (1 << 30)} GiB`
        : outcome.pageSize >= 1 << 20
          ? `${outcome.pageSize / (1 << 20)} MiB`
          : `${outcome.pageSize / 1024} KiB`;
    lines.push(
      s.green(`physical address 0x${outcome.pa!.toString(16)} (${size} page; ${rights(outcome.pageAccess)})`),
    );
  }
  if (outcome.writes.length > 0) {
    lines.push(
      `accessed/dirty flags written: ${outcome.writes.map(([a, v]) => `[0x${a.toString(16)}] = 0x${v.toString(16)}`).join(", ")}`,
    );
  } else lines.push("no entry written");
  return lines;
}

async function batch(ctx: CommandContext): Promise<number> {
  const reader = createInterface({ input: ctx.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  let bad = 0;
  let scenarios = 0;
  for await (const text of reader) {
    line++;
    if (text.trim() === "") continue;
    scenarios++;
    try {
      const outcome = runScenario(parseScenario(parseJson(text, `line ${line}`)));
      ctx.out.write(`${JSON.stringify(batchResult(outcome))}\n`);
    } catch (error) {
      if (!(error instanceof ScenarioError || error instanceof UsageError)) throw error;
      bad++;
      const message = error instanceof ScenarioError ? `line ${line}: ${error.message}` : error.message;
      ctx.out.write(`${JSON.stringify({ error: message })}\n`);
    }
  }
  if (bad > 0) {
    ctx.warn(
      `${bad} of ${scenarios} input lines were not valid scenarios (their output lines hold {"error": …})`,
    );
    return EXIT.USAGE;
  }
  return EXIT.OK;
}

export const walkCommand: Command = {
  name: "walk",
  summary: "Run one x86 page walk from a JSON scenario: every entry read, the rights, the address or #PF.",
  usage: "walk <scenario.json> [--json] | walk --batch < scenarios.jsonl",
  description:
    "A scenario gives the CPU state (cr0, cr3, cr4, efer, rflags, cpl, pkru, pkrs, maxPhysAddr), memory as 64-bit " +
    '["0x…address", "0x…value"] pairs, the linear address `va` and the access {write, fetch, user, implicit}. The ' +
    "walk sets accessed and dirty flags as the processor does. --batch reads one scenario per line on stdin and " +
    'writes one line per scenario: {"fault", "errorCode", "pa", "writes"}. The format is in apps/cli/README.md.',
  options: [
    { name: "batch", type: "boolean", description: "read JSON lines on stdin, write one JSON line each" },
    JSON_OPTION,
  ],
  positionals: { min: 0, max: 1, names: "a scenario file" },
  examples: [
    { command: "nestvisor walk scenario.json", description: "one walk, explained" },
    {
      command: "nestvisor walk --batch < scenarios.jsonl > results.jsonl",
      description: "many walks, for differential testing",
    },
  ],
  async run(ctx) {
    const isBatch = booleanOption(ctx.values, "batch");
    const file = ctx.positionals[0];
    if (isBatch) {
      if (file !== undefined) throw new UsageError("--batch reads scenarios from stdin; give no file");
      return await batch(ctx);
    }
    if (file === undefined)
      throw new UsageError("give a scenario file, or --batch to read JSON lines on stdin");
    const text = readTextFile(resolve(ctx.cwd, file), file, "walk scenario (JSON)");
    let outcome: WalkOutcome;
    try {
      outcome = runScenario(parseScenario(parseJson(text, file)));
    } catch (error) {
      if (error instanceof ScenarioError) throw new UsageError(`${file}: ${error.message}`);
      throw error;
    }
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, {
        ...batchResult(outcome),
        mode: outcome.mode,
        pageSize: outcome.fault ? null : outcome.pageSize,
        entries: outcome.entries.map((e) => ({
          level: e.level,
          address: e.address === null ? null : `0x${e.address.toString(16)}`,
          value: `0x${e.value.toString(16)}`,
        })),
      });
    } else writeLines(ctx.out, describe(outcome, file, ctx));
    return EXIT.OK;
  },
};
