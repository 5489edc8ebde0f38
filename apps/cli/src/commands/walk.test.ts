import { describe, expect, it } from "vitest";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

const SCENARIO = {
  cpu: { cr0: "0x80010011", cr3: "0x1000", cr4: "0x20", efer: "0x500", cpl: 3 },
  memory: [
    ["0x1000", "0x2007"],
    ["0x2000", "0x3007"],
    ["0x3000", "0x4007"],
    ["0x4008", "0x9005"],
  ],
  va: "0x1234",
  access: { write: true },
};

describe("nestvisor walk", () => {
  it("shows every entry read, the rights and the result", () => {
    const dir = tempFiles({ "s.json": JSON.stringify({ ...SCENARIO, access: {} }) });
    const r = runCli(["walk", "s.json"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("s.json: 4-level paging walk");
    expect(r.stdout).toMatch(/PML4E\s+0x1000\s+0x0000000000002007\s+P W U/);
    expect(r.stdout).toContain("physical address 0x9234 (4 KiB page; read-only, user, executable)");
    expect(r.stdout).toContain("accessed/dirty flags written: [0x1000] = 0x2027");
  });

  it("--json adds the entries to the batch fields", () => {
    const dir = tempFiles({ "s.json": JSON.stringify(SCENARIO) });
    const out = runJson(["walk", "s.json", "--json"], { cwd: dir }) as Record<string, unknown>;
    expect(out).toMatchObject({ fault: true, errorCode: "0x7", pa: null, mode: "4-level" });
    expect((out.entries as unknown[]).length).toBe(4);
    expect(out.writes).toEqual([
      ["0x1000", "0x2027"],
      ["0x2000", "0x3027"],
      ["0x3000", "0x4027"],
    ]);
  });

  it("--batch writes one JSON line per input line, an error object for a bad one, and exits 2 if any was bad", () => {
    const ok = JSON.stringify({ ...SCENARIO, access: {} });
    const input = `${ok}\n\n{"cpu": \n${JSON.stringify(SCENARIO)}\n${JSON.stringify({ cpu: { cr3: 0 }, va: 0, extra: 1 })}\n`;
    const r = runCli(["walk", "--batch"], { input });
    expect(r.code).toBe(2);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toEqual({
      fault: false,
      errorCode: "0x0",
      pa: "0x9234",
      writes: [
        ["0x1000", "0x2027"],
        ["0x2000", "0x3027"],
        ["0x3000", "0x4027"],
        ["0x4008", "0x9025"],
      ],
    });
    expect(lines[1].error).toMatch(/^line 3: malformed JSON/);
    expect(lines[2]).toMatchObject({ fault: true, errorCode: "0x7" });
    expect(lines[3].error).toMatch(/^line 5: extra: unknown field/);
    expect(r.stderr).toMatch(/2 of 4 input lines were not valid scenarios/);
    expect(runCli(["walk", "--batch"], { input: `${ok}\n` }).code).toBe(0);
  });

  it("rejects a malformed or invalid scenario file with one line and exit code 2", () => {
    const dir = tempFiles({
      "bad.json": '{"cpu": {"cr3": "0x1000"},',
      "odd.json": JSON.stringify({ cpu: { cr3: "0x1000" }, va: "0x1", access: { write: 1 } }),
    });
    const cases: [string[], RegExp][] = [
      [["walk", "bad.json"], /^nestvisor walk: bad\.json: malformed JSON \(/],
      [["walk", "odd.json"], /^nestvisor walk: odd\.json: access\.write: expected true or false, got 1/],
      [["walk"], /give a scenario file, or --batch/],
      [["walk", "bad.json", "--batch"], /--batch reads scenarios from stdin/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args, { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});
