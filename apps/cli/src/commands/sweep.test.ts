import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { SweepRow as Row } from "../sweep/sweep-row";
import { runCli, tempFiles } from "../testing/run-cli";

/** `nestvisor sweep` and `nestvisor sweep merge`, through the built binary (worker threads and all). */

const REPO = resolve(import.meta.dirname, "../../../..");
/** 7 workloads × 2 levels × (v6.12 and each optimization flag flipped alone): over 200 cells. */
const GRID = ["sweep", "--presets", "v6.12", "--ablate", "--iterations", "10"];
const SMALL = ["sweep", "-w", "cpuid,vmcall", "-l", "1,2", "-p", "v5.2,v6.12", "-n", "10"];

const lines = (text: string): string[] => text.split("\n").filter((l) => l !== "");
const rows = (text: string): Row[] => lines(text).map((l) => JSON.parse(l) as Row);
const sorted = (text: string): string => `${lines(text).sort().join("\n")}\n`;

let dir: string;
let full: string;
let cells: number;

beforeAll(() => {
  dir = tempFiles({});
  const listed = runCli([...GRID, "--dry-run", "--json"]);
  expect(listed.code).toBe(0);
  cells = lines(listed.stdout).length;
}, 60_000);

describe("nestvisor sweep", () => {
  it("runs a grid of over 200 cells in parallel worker threads, with a progress bar, one row per cell", () => {
    expect(cells).toBeGreaterThanOrEqual(200);
    const r = runCli([...GRID, "--jobs", "2", "--out", "all.jsonl", "--progress"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    const err = lines(r.stderr);
    expect(err[0]).toBe(`nestvisor sweep: 0/${cells} cells (0%) · 0.0 cells/s · ETA …`);
    // Lines come every interval; one may fall on the last cell, which reads "done in" instead of an ETA.
    for (const line of err.slice(1, -1))
      expect(line).toMatch(
        new RegExp(
          `^nestvisor sweep: (\\d+/${cells} cells \\(\\d+%\\) · [\\d.]+ cells/s · ETA |${cells}/${cells} cells \\(100%\\) · [\\d.]+ cells/s · done in )`,
        ),
      );
    expect(err.at(-1)).toMatch(
      new RegExp(
        `^nestvisor sweep: ${cells} cells in [\\d.]+ s \\([\\d.,]+ cells/s, 2 workers\\) → all\\.jsonl$`,
      ),
    );
    full = readFileSync(join(dir, "all.jsonl"), "utf8");
    const got = rows(full);
    expect(got.map((row) => row.index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: cells }, (_, i) => i),
    );
    expect(new Set(got.map((row) => row.grid)).size).toBe(1);
    for (const row of got) {
      expect(row.gridCells).toBe(cells);
      const params = JSON.parse(row.key) as {
        workload: string;
        level: number;
        preset: string;
        flags: object;
      };
      expect(params).toMatchObject({
        workload: row.workload,
        level: row.level,
        preset: row.preset,
        flags: row.flags,
      });
      expect(Object.keys(row).slice(0, 5)).toEqual(["grid", "gridCells", "nestvisor", "index", "key"]);
      expect(Object.keys(row).slice(5, 11)).toEqual([
        "workload",
        "level",
        "preset",
        "model",
        "profile",
        "flags",
      ]);
    }
    const cpuid = got.find(
      (row) => row.workload === "cpuid" && row.level === 2 && Object.keys(row.flags).length === 0,
    )!;
    expect(cpuid.cyclesPerIteration).toBe(8142);
  });

  it("two shards merged equal the unsharded run, byte for byte after sorting", () => {
    for (const k of [1, 2]) {
      const r = runCli(
        [...GRID, "--shard", `${k}/2`, "--jobs", "1", "--out", `shard-${k}.jsonl`, "--quiet"],
        { cwd: dir },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe("");
      const shard = rows(readFileSync(join(dir, `shard-${k}.jsonl`), "utf8"));
      expect(shard.every((row) => row.index % 2 === k - 1)).toBe(true);
    }
    const merged = runCli(["sweep", "merge", "shard-2.jsonl", "shard-1.jsonl"], { cwd: dir });
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stderr).toMatch(
      new RegExp(`^nestvisor sweep merge: ${cells} of ${cells} cells of grid [0-9a-f]{16} from 2 files\\n$`),
    );
    expect(sorted(merged.stdout)).toBe(sorted(full));
    const single = runCli(["sweep", "merge", "all.jsonl", "--out", "merged.jsonl", "--quiet"], { cwd: dir });
    expect(single.code).toBe(0);
    expect(readFileSync(join(dir, "merged.jsonl"), "utf8")).toBe(merged.stdout);
    // Rows come out by cell index.
    expect(rows(merged.stdout).map((row) => row.index)).toEqual(Array.from({ length: cells }, (_, i) => i));
  });

  it("resumes: cells already in --out are skipped, a truncated last line is run again", () => {
    const done = lines(full).slice(0, 40);
    const cut = lines(full)[40]!.slice(0, 50);
    writeFileSync(join(dir, "resume.jsonl"), `${done.join("\n")}\n${cut}`);
    const r = runCli([...GRID, "--out", "resume.jsonl"], { cwd: dir, env: { NESTVISOR_PROGRESS: "0" } });
    expect(r.code, r.stderr).toBe(0);
    const err = lines(r.stderr);
    expect(err[0]).toBe(
      "nestvisor sweep: warning: resume.jsonl: dropped a truncated last line (an interrupted run); that cell runs again",
    );
    expect(err[1]).toMatch(
      new RegExp(`^nestvisor sweep: ${cells - 40} cells in .*, 40 already done → resume\\.jsonl$`),
    );
    const resumed = readFileSync(join(dir, "resume.jsonl"), "utf8");
    expect(resumed.startsWith(`${done.join("\n")}\n`)).toBe(true);
    expect(sorted(resumed)).toBe(sorted(full));
    const again = runCli([...GRID, "--out", "resume.jsonl"], { cwd: dir });
    expect(again.code).toBe(0);
    expect(again.stderr).toBe(`nestvisor sweep: nothing to run: all ${cells} cells are in resume.jsonl\n`);
    expect(readFileSync(join(dir, "resume.jsonl"), "utf8")).toBe(resumed);
  });

  it("refuses to resume a file of another grid", () => {
    copyFileSync(join(dir, "all.jsonl"), join(dir, "other.jsonl"));
    const r = runCli([...SMALL, "--out", "other.jsonl"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^nestvisor sweep: other\\.jsonl:1 is a row of another grid \\([0-9a-f]{16}, ${cells} cells; this grid is [0-9a-f]{16}, 8 cells\\): use another --out or delete the file\\n$`,
      ),
    );
  });

  it("refuses to resume rows another nestvisor version computed", () => {
    const [first, ...rest] = lines(readFileSync(join(dir, "all.jsonl"), "utf8"));
    const row = JSON.parse(first!) as Record<string, unknown>;
    expect(typeof row.nestvisor).toBe("string");
    const older = JSON.stringify({ ...row, nestvisor: "0.0.1-older" });
    writeFileSync(join(dir, "older.jsonl"), `${[older, ...rest].join("\n")}\n`);
    const r = runCli([...GRID, "--out", "older.jsonl"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^nestvisor sweep: older\.jsonl:1 was computed by nestvisor 0\.0\.1-older, this is nestvisor \S+: use another --out, or delete the file to run the grid again\n$/,
    );
  });

  it("without --out writes the rows to stdout in cell order", () => {
    const r = runCli([...SMALL, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const got = rows(r.stdout);
    expect(got.map((row) => row.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(got.map((row) => `${row.workload} L${row.level} ${row.preset}`)).toEqual([
      "cpuid L1 v5.2",
      "cpuid L1 v6.12",
      "cpuid L2 v5.2",
      "cpuid L2 v6.12",
      "vmcall L1 v5.2",
      "vmcall L1 v6.12",
      "vmcall L2 v5.2",
      "vmcall L2 v6.12",
    ]);
    expect(runCli([...SMALL, "--quiet", "--jobs", "1"]).stdout).toBe(r.stdout);
  });

  it("sweeps flag sets (--flags, --vary), profiles and models, each row naming its model", () => {
    const args = [
      "sweep",
      "-w",
      "cpuid",
      "-l",
      "2",
      "-p",
      "v6.12",
      "-n",
      "10",
      "--flags",
      "none",
      "--flags",
      "controlsShadow=off",
      "--vary",
      "lazyRareGuestSync",
      "--profiles",
      "intel-server,uniform",
      "--model",
      "examples/enlightened-vmcs/model.mjs",
    ];
    const listed = runCli([...args, "--dry-run"], { cwd: REPO });
    expect(listed.code).toBe(0);
    expect(lines(listed.stdout)[0]).toMatch(/^16 cells in grid [0-9a-f]{16}$/);
    const r = runCli([...args, "--quiet"], { cwd: REPO });
    expect(r.code, r.stderr).toBe(0);
    const got = rows(r.stdout);
    expect(got).toHaveLength(16);
    expect(got.slice(0, 4).map((row) => row.flags)).toEqual([
      { lazyRareGuestSync: true },
      { lazyRareGuestSync: false },
      { controlsShadow: false, lazyRareGuestSync: true },
      { controlsShadow: false, lazyRareGuestSync: false },
    ]);
    expect(got.slice(0, 8).map((row) => row.model)).toEqual([
      null,
      null,
      null,
      null,
      ...Array(4).fill("kvm-evmcs"),
    ]);
    expect(new Set(got.map((row) => row.profile))).toEqual(new Set(["intel-server", "uniform"]));
    expect(got[0]!.guest).toBe(got[4]!.guest);
  });

  it("--dry-run lists the cells of a shard, and which are done", () => {
    const r = runCli([...GRID, "--dry-run", "--shard", "2/3", "--out", "shard-1.jsonl"], { cwd: dir });
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    const mine = Math.floor((cells - 2) / 3) + 1;
    const doneInShard1 = Array.from({ length: cells }, (_, i) => i).filter(
      (i) => i % 3 === 1 && i % 2 === 0,
    ).length;
    expect(out[0]).toMatch(
      new RegExp(
        `^${cells} cells in grid [0-9a-f]{16}; shard 2/3: ${mine} cells; ${doneInShard1} already done$`,
      ),
    );
    expect(out[1]).toMatch(/^cell\s+workload\s+level\s+preset\s+profile\s+model\s+flags\s+status$/);
    expect(out[3]).toMatch(/^\s+1\s+cpuid\s+L1\s+v6\.12\s+intel-server\s+\S+=o\w+\s*$/);
    expect(out).toHaveLength(3 + mine);
    for (const line of out) expect(line.length).toBeLessThanOrEqual(100);
    const json = runCli([...SMALL, "--dry-run", "--json", "--shard", "1/4"]);
    expect(lines(json.stdout).map((l) => (JSON.parse(l) as { index: number }).index)).toEqual([0, 4]);
  });

  it("rejects bad grids and options with one line and exit code 2", () => {
    const cases: [string[], RegExp][] = [
      [["sweep", "--shard", "3/2"], /^nestvisor sweep: --shard 3\/2: k must be between 1 and n$/],
      [["sweep", "--shard", "1/0"], /--shard 1\/0: n must be between 1 and/],
      [["sweep", "--shard", "half"], /--shard half: expected k\/n/],
      [["sweep", "--levels", "4"], /a level in --levels must be an integer in \[1, 3\], not "4"/],
      [["sweep", "-w", "cpuidd"], /unknown workload "cpuidd" \(did you mean "cpuid"\?\)/],
      [["sweep", "-p", "v5.4"], /unknown kernel preset "v5\.4"/],
      [
        ["sweep", "--flag", "controlShadow=off"],
        /unknown hypervisor flag "controlShadow" \(did you mean "controlsShadow"\?\)/,
      ],
      [["sweep", "--flags", "shadowVmcs=maybe"], /value "maybe" for "shadowVmcs"/],
      [["sweep", "--vary", "ept,ept"], /--vary lists a flag twice/],
      [["sweep", "--vary", "nope"], /--vary: unknown hypervisor flag "nope"/],
      [["sweep", "--profiles", "fast"], /unknown cost profile "fast"/],
      [["sweep", "--jobs", "0"], /--jobs must be an integer in \[1, \d+\], not "0"/],
      [["sweep", "--param", "processes=8"], /workload "cpuid": .*unknown parameter "processes"/],
      [["sweep", "--model", "missing.mjs"], /^nestvisor sweep: --model missing\.mjs: no such file$/],
      [["sweep", "extra"], /unexpected argument "extra"/],
      [["sweep", "merge"], /missing sweep output files/],
      [["sweep", "merge", "none.jsonl"], /^nestvisor sweep merge: none\.jsonl: no such file$/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trimEnd()).toMatch(message);
      expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
    }
  });

  it("merge reports missing cells (exit 1), refuses other grids (2) and conflicting rows (1), and writes CSV", () => {
    const partial = runCli(["sweep", "merge", "shard-1.jsonl"], { cwd: dir });
    expect(partial.code, partial.stderr).toBe(1);
    expect(lines(partial.stdout)).toHaveLength(Math.ceil(cells / 2));
    expect(lines(partial.stderr)[1]).toMatch(
      new RegExp(
        `^nestvisor sweep merge: warning: ${Math.floor(cells / 2)} of ${cells} cells missing: 1, 3, 5, .* and \\d+ more \\(run the shards that hold them, then merge again\\)$`,
      ),
    );
    const small = runCli([...SMALL, "--out", "small.jsonl", "--quiet"], { cwd: dir });
    expect(small.code).toBe(0);
    const mixed = runCli(["sweep", "merge", "all.jsonl", "small.jsonl"], { cwd: dir });
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(
      /^nestvisor sweep merge: small\.jsonl:1 is a row of grid [0-9a-f]{16} \(8 cells\) but all\.jsonl:1 of grid .*: the files come from different sweeps\n$/,
    );
    const first = lines(full)[0]!;
    const changed = first.replace(/"cyclesPerIteration":\d+/, '"cyclesPerIteration":1');
    writeFileSync(join(dir, "conflict.jsonl"), `${changed}\n`);
    const conflict = runCli(["sweep", "merge", "all.jsonl", "conflict.jsonl"], { cwd: dir });
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(
      /^nestvisor sweep merge: cell \d+ differs between all\.jsonl:1 and conflict\.jsonl:1/,
    );
    const csv = runCli(["sweep", "merge", "small.jsonl", "--csv", "--quiet"], { cwd: dir });
    expect(csv.code).toBe(0);
    const table = lines(csv.stdout);
    expect(table[0]).toBe("index,workload,level,preset,model,profile,flags,metric,value");
    expect(table).toContain("3,cpuid,2,v6.12,,intel-server,,cyclesPerIteration,8142");
  });

  it("a guest-visible difference between cells of one workload is a failed check (exit 1)", () => {
    const [a, b] = lines(readFileSync(join(dir, "small.jsonl"), "utf8"))
      .map((l) => JSON.parse(l) as Row)
      .filter((row) => row.workload === "cpuid" && row.level === 1);
    const edited = [a!, { ...b!, guest: "ffffffffffffffff" }].map((row) => JSON.stringify(row)).join("\n");
    writeFileSync(join(dir, "guest.jsonl"), `${edited}\n`);
    const r = runCli(["sweep", "merge", "guest.jsonl", "--quiet"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^nestvisor sweep merge: warning: check failed: cpuid at L1 saw different guest-visible results in cells 0 and 1\n/,
    );
  });

  it("fails naming the cell when a model module ends its worker with process.exit (exit 1, one line)", () => {
    const modelDir = tempFiles({
      "exit.mjs":
        'export default { name: "exits", policies: { rootCache: { name: "x", prevRoots: 3, newPgd() { process.exit(1); } } } };\n',
    });
    const r = runCli(
      [
        "sweep",
        "--model",
        "exit.mjs",
        "-w",
        "cr3_switch",
        "-l",
        "1",
        "-f",
        "ept=off",
        "-n",
        "10",
        "-p",
        "v6.12",
        "-j",
        "1",
      ],
      { cwd: modelDir },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(
      "nestvisor sweep: sweep worker died running cell 1 (cr3_switch L1 v6.12 intel-server exit.mjs ept=off) with exit code 1\n",
    );
  });

  it("merge refuses rows moved to another cell's index and keys that are not a cell's JSON (exit 2, one line)", () => {
    const small = rows(readFileSync(join(dir, "small.jsonl"), "utf8")).sort((a, b) => a.index - b.index);
    const write = (name: string, list: Row[]): void =>
      writeFileSync(join(dir, name), list.map((row) => `${JSON.stringify(row)}\n`).join(""));
    write("swapped.jsonl", [
      small[0]!,
      { ...small[2]!, index: 1 },
      { ...small[1]!, index: 2 },
      ...small.slice(3),
    ]);
    const swapped = runCli(["sweep", "merge", "swapped.jsonl"], { cwd: dir });
    expect(swapped.code).toBe(2);
    expect(swapped.stdout).toBe("");
    expect(swapped.stderr).toMatch(
      /^nestvisor sweep merge: swapped\.jsonl: the keys of the 8 cells in index order give grid [0-9a-f]{16}, not the rows' grid [0-9a-f]{16}: some row does not match its index \(edited or mixed-up rows\?\)\n$/,
    );
    write("moved.jsonl", [{ ...small[2]!, index: 1 }]);
    // small.jsonl holds the rows in the order the cells finished.
    const line = rows(readFileSync(join(dir, "small.jsonl"), "utf8")).findIndex((row) => row.index === 2) + 1;
    const moved = runCli(["sweep", "merge", "small.jsonl", "moved.jsonl"], { cwd: dir });
    expect(moved.code).toBe(2);
    expect(moved.stderr).toBe(
      `nestvisor sweep merge: moved.jsonl:1 is cell 1 but has the key of cell 2 at small.jsonl:${line}: a row does not match its index (edited or mixed-up rows?)\n`,
    );
    write("badkey.jsonl", [small[0]!, { ...small[1]!, key: "not json" }]);
    const badKey = runCli(["sweep", "merge", "badkey.jsonl"], { cwd: dir });
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toBe(
      `nestvisor sweep merge: badkey.jsonl:2: not a nestvisor sweep row: "key" is not the JSON of a cell's parameters\n`,
    );
  });

  it("--dry-run leaves a truncated --out as it is and says what a run would drop", () => {
    const text = readFileSync(join(dir, "small.jsonl"), "utf8");
    const cut = `${lines(text).slice(0, 3).join("\n")}\n${lines(text)[3]!.slice(0, 50)}`;
    writeFileSync(join(dir, "cut.jsonl"), cut);
    const r = runCli([...SMALL, "--out", "cut.jsonl", "--dry-run"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(
      "nestvisor sweep: warning: cut.jsonl: a truncated last line (50 bytes, an interrupted run) would be dropped and its cell run again; --dry-run leaves the file as it is\n",
    );
    expect(lines(r.stdout)[0]).toMatch(/^8 cells in grid [0-9a-f]{16}; 3 already done$/);
    expect(readFileSync(join(dir, "cut.jsonl"), "utf8")).toBe(cut);
  });

  it("merge --out replaces the file whole (even one of its inputs), leaving no temporary file", () => {
    const before = readdirSync(dir).sort();
    const text = readFileSync(join(dir, "small.jsonl"), "utf8");
    const shuffled = lines(text).reverse();
    writeFileSync(join(dir, "inplace.jsonl"), `${shuffled.join("\n")}\n`);
    const r = runCli(["sweep", "merge", "inplace.jsonl", "--out", "inplace.jsonl", "--quiet"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, "inplace.jsonl"), "utf8")).toBe(sorted(text));
    expect(readdirSync(dir).sort()).toEqual([...new Set([...before, "inplace.jsonl"])].sort());
    const csv = runCli(["sweep", "merge", "small.jsonl", "--csv", "--out", "small.csv", "--quiet"], {
      cwd: dir,
    });
    expect(csv.code).toBe(0);
    expect(readFileSync(join(dir, "small.csv"), "utf8")).toBe(
      runCli(["sweep", "merge", "small.jsonl", "--csv", "--quiet"], { cwd: dir }).stdout,
    );
    const nowhere = runCli(["sweep", "merge", "small.jsonl", "--out", "no/such/dir.jsonl"], { cwd: dir });
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/^nestvisor sweep merge: cannot write no\/such\/dir\.jsonl: ENOENT/);
  });
});
