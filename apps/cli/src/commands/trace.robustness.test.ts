import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { main } from "../main";
import { DECODE_KINDS } from "../model/decoders";
import { BINARY } from "../testing/run-cli";

/**
 * `nestvisor trace` and `nestvisor decode` on bad input, run in-process through `main` (and, for
 * stdin, as the built binary): exit 0, or exit 2 with one line on stderr naming what is wrong and
 * nothing on stdout — never an internal error (exit 1).
 */

const FIXTURES = resolve(import.meta.dirname, "../../test/fixtures");
const dir = mkdtempSync(join(tmpdir(), "nestvisor-trace-robust-"));

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function run(args: readonly string[], cwd = dir): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(args, {
    out: { write: (text: string) => (out += text) },
    err: { write: (text: string) => (err += text) },
    env: { NO_COLOR: "1" },
    cwd,
    stdin: Readable.from([]),
  });
  return { code, out, err };
}

function expectUsageError(r: Run, message: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.out).toBe("");
  expect(r.err.trimEnd()).toMatch(message);
  expect(r.err.trimEnd().split("\n")).toHaveLength(1);
}

const EXIT = " qemu-system-x86-6660  [007]   398.690000: kvm_exit:              reason HLT rip 0x1 info 0 0";
const ENTRY = " qemu-system-x86-6660  [007]   398.690004: kvm_entry:             vcpu 0";

const line = fc.oneof(
  fc.constantFrom(EXIT, ENTRY, "# tracer: nop", "", "CPU:1 [LOST 3 EVENTS]", `${EXIT} ${EXIT.trim()}`),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.tuple(fc.constantFrom(EXIT, ENTRY), fc.nat()).map(([l, cut]) => l.slice(0, cut % l.length)),
);

describe("trace stat on arbitrary files", () => {
  it("prints the statistics (exit 0) or one usage error (exit 2), never an internal error", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { maxLength: 12 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        async (lines, end) => {
          writeFileSync(join(dir, "t.txt"), lines.join(end));
          const r = await run(["trace", "stat", "t.txt", "--json"]);
          if (r.code === 0) {
            expect(JSON.parse(r.out)).toMatchObject({ file: "t.txt" });
            expect(r.err).toBe("");
          } else expectUsageError(r, /^nestvisor trace stat: t\.txt (is not a trace|is a binary file)/);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("decode on arbitrary values", () => {
  it("decodes (exit 0) or gives one usage error (exit 2), never an internal error", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...DECODE_KINDS.map((k) => k.name)),
        fc.oneof(fc.string({ maxLength: 24 }), fc.bigInt({ min: 0n, max: 1n << 70n }).map(String)),
        async (kind, value) => {
          const reason = kind === "exit-qual" ? ["--reason", "IO_INSTRUCTION"] : [];
          const r = await run(["decode", kind, ...reason, "--", value]);
          if (r.code === 0) expect(r.out.length).toBeGreaterThan(0);
          else expectUsageError(r, /^nestvisor decode: /);
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe("trace and decode defects found by the robustness audit (regressions)", () => {
  it("refuses an empty file name (it read the working directory: ': is a directory')", async () => {
    expectUsageError(
      await run(["trace", "stat", ""]),
      /the trace file name is empty \(""\); give a file, or - for stdin/,
    );
  });

  it("--vcpu that names no vCPU of the trace is an error listing them; replay takes a thread id too", async () => {
    expectUsageError(
      await run(["trace", "stat", "nested-trace-cmd.txt", "--vcpu", "42"], FIXTURES),
      /--vcpu "42": nested-trace-cmd\.txt has no exits of that vCPU or thread id \(vCPUs: 0, 1\)$/,
    );
    expectUsageError(
      await run(["trace", "replay", "nested-trace-cmd.txt", "--vcpu", "0x1a04"], FIXTURES),
      /--vcpu "0x1a04": nested-trace-cmd\.txt has no exits/,
    );
    const byTid = await run(
      ["trace", "replay", "nested-trace-cmd.txt", "--vcpu", "6661", "-n", "10", "--json"],
      FIXTURES,
    );
    expect(byTid.code).toBe(0);
    expect(JSON.parse(byTid.out)).toMatchObject({ exits: 6, rows: [{ reason: "EPT_VIOLATION" }] });
  });

  it("reports timestamps that go backwards instead of dropping the exits' times silently", async () => {
    writeFileSync(join(dir, "back.txt"), [EXIT, ENTRY.replace("398.690004", "398.689000")].join("\n"));
    const r = await run(["trace", "stat", "back.txt"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /1 event is timestamped earlier than the event before on its thread \(first: line 2\)/,
    );
    const json = JSON.parse((await run(["trace", "stat", "back.txt", "--json"])).out) as Record<
      string,
      unknown
    >;
    expect(json).toMatchObject({ timeReversals: 1, firstTimeReversal: 2, exits: 1 });
  });

  it("names the file and line of numbers too large for KVM's fields", async () => {
    writeFileSync(join(dir, "huge.txt"), `${EXIT.replace("rip 0x1", "rip 0x1ffffffffffffffffffff")}\n`);
    expectUsageError(
      await run(["trace", "stat", "huge.txt"]),
      /huge\.txt is not a trace: .*\(line 1: kvm_exit: rip 0x1ffffffffffffffffffff does not fit in 64 bits\)$/,
    );
  });

  it("reads a text trace that mentions 'tracing' at its start (it was taken for trace.dat)", async () => {
    writeFileSync(join(dir, "tracing.txt"), ["# tracing on", EXIT, ENTRY].join("\n"));
    const r = await run(["trace", "stat", "tracing.txt", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ exits: 1 });
  });

  it("stdin that cannot be read, or holds nothing, is a usage error naming stdin (was: internal error EISDIR)", () => {
    const fd = openSync(dir, "r");
    try {
      const r = spawnSync(process.execPath, [BINARY, "trace", "stat", "-"], {
        stdio: [fd, "pipe", "pipe"],
        encoding: "utf8",
      });
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^nestvisor trace stat: stdin: cannot read a trace \(EISDIR/);
    } finally {
      closeSync(fd);
    }
    const empty = spawnSync(process.execPath, [BINARY, "trace", "stat", "-"], {
      input: "",
      encoding: "utf8",
    });
    expect(empty.status).toBe(2);
    expect(empty.stderr).toBe("nestvisor trace stat: stdin is not a trace: it holds no event lines\n");
  });

  it("decode: --reason with a kind other than exit-qual is an error (it was ignored)", async () => {
    expectUsageError(
      await run(["decode", "cr0", "1", "--reason", "CPUID"]),
      /--reason is for exit-qual only, not for cr0$/,
    );
    expect((await run(["decode", "exit-qual", "0x5658000b", "-r", "IO_INSTRUCTION"])).code).toBe(0);
  });

  it("decode --help lists each kind with its summary (the padding was collapsed into one run of words)", async () => {
    const r = await run(["decode", "--help"]);
    expect(r.out).toContain("\nvmcs-field: a VMCS field by encoding or name");
    expect(r.out).toContain("\nexit-qual: an exit qualification, with --reason");
    expect(r.out).toContain("\nept-vpid-cap: IA32_VMX_EPT_VPID_CAP\n");
  });
});
