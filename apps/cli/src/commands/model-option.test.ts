import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ResultRow as Row } from "../model/result-row";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

/** `--model <module>` of run, compare and explain (the sweep's is in sweep.test.ts). */

const REPO = resolve(import.meta.dirname, "../../../..");
const EVMCS = "examples/enlightened-vmcs/model.mjs";

describe("--model", () => {
  it("run: the module's model runs, and its row carries the model's name", () => {
    const out = runJson(["run", "cpuid", "-n", "20", "--model", EVMCS, "--json"], { cwd: REPO }) as {
      rows: Row[];
    };
    expect(out.rows[0]).toMatchObject({
      model: "kvm-evmcs",
      preset: "v6.12",
      flags: {},
      cyclesPerIteration: 7110,
    });
    const text = runCli(["run", "cpuid", "-n", "20", "-m", EVMCS], { cwd: REPO });
    expect(text.code).toBe(0);
    expect(text.stdout.split("\n")[0]).toMatch(
      /^cpuid at L2 · model kvm-evmcs · preset v6\.12 · profile intel-server/,
    );
  });

  it("the base spec comes from --preset, --flag and --profile; a function export receives it", () => {
    const dir = tempFiles({
      "fn.mjs": 'export default (base) => ({ name: "fn-" + base.preset, flags: { shadowVmcs: false } });',
    });
    const out = runJson(
      [
        "run",
        "cpuid",
        "-n",
        "10",
        "--model",
        "fn.mjs",
        "--preset",
        "v5.2",
        "--flag",
        "controlsShadow=off",
        "--profile",
        "uniform",
        "--json",
      ],
      { cwd: dir },
    ) as { rows: Row[] };
    expect(out.rows[0]).toMatchObject({
      model: "fn-v5.2",
      preset: "v5.2",
      profile: "uniform",
      flags: { controlsShadow: false, shadowVmcs: false },
    });
  });

  it("compare: one more variant per model next to each preset, compared with it", () => {
    const args = ["compare", "-w", "cpuid", "-l", "2", "-p", "v5.2,v6.12", "--model", EVMCS];
    const out = runJson([...args, "--json"], { cwd: REPO }) as { rows: Row[] };
    expect(out.rows.map((r) => [r.preset, r.model])).toEqual([
      ["v5.2", null],
      ["v5.2", "kvm-evmcs"],
      ["v6.12", null],
      ["v6.12", "kvm-evmcs"],
    ]);
    const text = runCli(args, { cwd: REPO });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("Δ against each preset");
    expect(text.stdout).toMatch(
      /cpuid\s+v5\.2\s+9,010\n\s+kvm-evmcs\s+7,513\s+-16\.6%\n\s+v6\.12\s+8,142\n\s+kvm-evmcs\s+7,110\s+-12\.7%/,
    );
    expect(text.stdout).toContain(`kvm-evmcs: --model ${EVMCS} (replaces nestedSync, vmcsAccess)`);
    expect(text.stdout).toContain("✓ guest-visible results identical under every variant (4 runs)");
    for (const line of text.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
    const csv = runCli(
      ["compare", "-w", "cpuid", "-l", "2", "-p", "v6.12", "-n", "20", "-m", EVMCS, "--csv"],
      {
        cwd: REPO,
      },
    );
    expect(csv.stdout).toContain("cpuid,2,v6.12,kvm-evmcs,,cyclesPerIteration,7110");
  });

  it("compare: --model is repeatable, one column per model", () => {
    const out = runJson(
      [
        "compare",
        "-w",
        "cr3_switch",
        "-l",
        "1",
        "-p",
        "v6.12",
        "-n",
        "50",
        "--flag",
        "ept=off",
        "--param",
        "processes=8",
        "-m",
        "examples/root-cache-8/model.mjs",
        "-m",
        EVMCS,
        "--json",
      ],
      { cwd: REPO },
    ) as { rows: Row[] };
    expect(out.rows.map((r) => r.model)).toEqual([null, "kvm-root-cache-8", "kvm-evmcs"]);
    expect(out.rows.every((r) => r.flags.ept === false)).toBe(true);
  });

  it("explain: the round trip of the module's model", () => {
    const out = runJson(["explain", "cpuid", "--model", EVMCS, "--no-flags", "--json"], { cwd: REPO }) as {
      model: string;
      cycles: number;
    };
    expect(out).toMatchObject({ model: "kvm-evmcs", cycles: 7110 });
    const text = runCli(["explain", "cpuid", "--model", EVMCS, "--no-flags"], { cwd: REPO });
    expect(text.stdout.split("\n")[0]).toContain("model kvm-evmcs, preset v6.12");
  });

  it("a module anywhere gets the binary's own @nestvisor packages: the same classes, nothing installed", () => {
    const dir = tempFiles({
      "same.mjs": [
        'import { CostAccumulator } from "@nestvisor/hypervisor";',
        'import { kvmRootCacheWithSize } from "@nestvisor/mmu";',
        "const vmcsAccess = (context) => {",
        '  if (!(context.meter instanceof CostAccumulator)) throw new Error("a second copy of @nestvisor/hypervisor");',
        "  return { hi: 0, read: () => -1, write: () => false };",
        "};",
        'export default { name: "same", policies: { vmcsAccess, rootCache: kvmRootCacheWithSize(8) } };',
      ].join("\n"),
    });
    const run = runJson(["run", "cpuid", "-n", "10", "--model", "same.mjs", "--json"], { cwd: dir }) as {
      rows: Row[];
    };
    expect(run.rows[0]!.model).toBe("same");
    const sweep = runCli(
      ["sweep", "-w", "cpuid", "-l", "2", "-p", "v6.12", "-n", "10", "-m", "same.mjs", "-q"],
      {
        cwd: dir,
      },
    );
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(sweep.stdout.trimEnd().split("\n")).toHaveLength(2);
  });

  it("a module that cannot be used is one line naming it, exit 2", () => {
    const dir = tempFiles({
      "throws.mjs": 'throw new Error("boom");',
      "number.mjs": "export default 42;",
      "nothing.mjs": "export const x = 1;",
      "typo.mjs": 'export default { name: "x", polcies: {} };',
      "flag.mjs": "export default { flags: { nope: true } };",
      "dep.mjs": 'import "@nestvisor/nothing"; export default {};',
    });
    const suiteModel = join(REPO, "examples/models/broken-root-cache.mjs");
    const cases: [string[], RegExp][] = [
      [["run", "cpuid", "--model", "missing.mjs"], /^nestvisor run: --model missing\.mjs: no such file\n$/],
      [
        ["compare", "--model", "throws.mjs"],
        /^nestvisor compare: --model throws\.mjs: the module failed to load: boom\n$/,
      ],
      [
        ["explain", "cpuid", "--model", "number.mjs"],
        /--model number\.mjs: the model export is a number, not a ModelSpec/,
      ],
      [["run", "cpuid", "--model", "nothing.mjs"], /exports no "default" or "model" \(exports: x\)/],
      [["run", "cpuid", "--model", "typo.mjs"], /unknown ModelSpec member polcies/],
      [
        ["run", "cpuid", "--model", "flag.mjs"],
        /^nestvisor run: --model flag\.mjs: unknown hypervisor flag "nope"/,
      ],
      [
        ["compare", "--model", suiteModel],
        /a function of the test suite's kit \(it reads kit\.mmu\): a conformance-suite model, not a ModelSpec .*run it with nestvisor test --model /,
      ],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args, { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
    }
  });

  it("a model whose policy throws while running is exit 1, naming the model and the workload", () => {
    const dir = tempFiles({
      "bad.mjs":
        'export default { name: "bad", policies: { reflection: () => { throw new Error("policy bug"); } } };',
    });
    for (const args of [
      ["run", "cpuid", "-n", "5"],
      ["compare", "-w", "cpuid", "-n", "5"],
      ["explain", "cpuid"],
    ]) {
      const r = runCli([...args, "--model", "bad.mjs"], { cwd: dir });
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/^nestvisor \w+: model bad failed on cpuid at L2.*: policy bug\n$/);
    }
  });
});
