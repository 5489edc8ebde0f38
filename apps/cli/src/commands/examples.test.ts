import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ResultRow as Row } from "../model/result-row";
import { runCliAsync, runJson } from "../testing/run-cli";

/**
 * The worked examples (examples/*): each one's effect shows in `nestvisor compare --model`, and
 * every `nestvisor` command line in an example's README runs as written, from the repository root.
 */

const REPO = resolve(import.meta.dirname, "../../../..");
const EXAMPLES = join(REPO, "examples");

function compareRows(args: readonly string[]): Row[] {
  return (runJson(["compare", ...args, "--json"], { cwd: REPO }) as { rows: Row[] }).rows;
}

/** The rows of one workload and level: [KVM, the model]. */
function pair(rows: readonly Row[], workload: string, level: number): [Row, Row] {
  const [kvm, model, ...rest] = rows.filter((r) => r.workload === workload && r.level === level);
  expect(rest).toEqual([]);
  expect(kvm!.model).toBeNull();
  expect(model!.model).not.toBeNull();
  return [kvm!, model!];
}

const count = (row: Row, name: string): number => row.counters[name] ?? 0;

/** `nestvisor …` lines of the ```sh blocks of a README, continuation lines joined. */
export function readmeCommands(markdown: string): string[][] {
  const commands: string[][] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, "");
    for (const line of joined.split("\n")) {
      const text = line.trim();
      if (!text.startsWith("nestvisor ")) continue;
      const words = [...text.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
      commands.push(words.slice(1));
    }
  }
  return commands;
}

describe("examples", () => {
  it("root-cache-8: 8 previous roots turn cr3_switch's root-cache misses into hits (shadow paging)", () => {
    const model = "examples/root-cache-8/model.mjs";
    const common = ["-w", "cr3_switch", "-p", "v6.12", "--param", "processes=8", "-m", model];
    const [kvm1, rc1] = pair(compareRows([...common, "-l", "1", "--flag", "ept=off"]), "cr3_switch", 1);
    expect(rc1.model).toBe("kvm-root-cache-8");
    // Per switch, once every process has run (the first round's misses are spread over 1,000 rounds).
    expect(count(kvm1, "PGD_MISS")).toBeCloseTo(1, 2);
    expect(count(rc1, "PGD_MISS")).toBeCloseTo(0, 2);
    expect(count(rc1, "PGD_HIT_PREV")).toBeCloseTo(1, 2);
    // The miss's root load (a new root, its TLB flush) against a hit's reuse.
    expect(kvm1.cyclesPerIteration - rc1.cyclesPerIteration).toBeCloseTo(230, -1);
    const [kvm2, rc2] = pair(compareRows([...common, "-l", "2", "--flag", "l1Ept=off"]), "cr3_switch", 2);
    expect(kvm2.cyclesPerIteration - rc2.cyclesPerIteration).toBeCloseTo(230, -1);
    // With EPT the guest's CR3 switch does not exit: nothing changes.
    const [kvmEpt, rcEpt] = pair(compareRows([...common, "-l", "1"]), "cr3_switch", 1);
    expect(rcEpt.cyclesPerIteration).toBe(kvmEpt.cyclesPerIteration);
  });

  it("enlightened-vmcs: L1's VMREAD/VMWRITE exits disappear and nested round trips get cheaper", () => {
    const model = "examples/enlightened-vmcs/model.mjs";
    const workloads = ["cpuid", "vmcall", "inl_from_kernel"];
    const args = ["-w", workloads.join(","), "-l", "2", "-p", "v6.12", "-n", "50", "-m", model];
    const noShadow = compareRows([...args, "--flag", "shadowVmcs=off"]);
    const shadow = compareRows(args);
    for (const workload of workloads) {
      const [kvm, evmcs] = pair(noShadow, workload, 2);
      expect(evmcs.model).toBe("kvm-evmcs");
      expect(count(kvm, "EMULATED_VMREAD") + count(kvm, "EMULATED_VMWRITE"), workload).toBeGreaterThan(0);
      expect(count(evmcs, "EMULATED_VMREAD") + count(evmcs, "EMULATED_VMWRITE"), workload).toBe(0);
      // L2's exit, L1's DEBUGCTL read before its entry (an MSR exit, not a VMCS access), L1's VMRESUME.
      expect(count(evmcs, "HARDWARE_VM_EXIT")).toBe(3);
      expect(count(kvm, "HARDWARE_VM_EXIT")).toBeGreaterThan(3);
      const [kvmShadow, evmcsShadow] = pair(shadow, workload, 2);
      expect(evmcsShadow.cyclesPerIteration, workload).toBeLessThan(kvmShadow.cyclesPerIteration);
      expect(count(evmcsShadow, "VMCLEAR")).toBe(0);
      expect(count(kvmShadow, "VMCLEAR")).toBe(2);
    }
  });

  it("dvh-virtual-passthrough: L0 completes a nested guest's port I/O, other exits still reach L1", () => {
    const model = "examples/dvh-virtual-passthrough/model.mjs";
    const rows = compareRows([
      "-w",
      "inl_from_kernel,inl_from_qemu,cpuid",
      "-l",
      "1,2",
      "-p",
      "v6.12",
      "-n",
      "50",
      "-m",
      model,
    ]);
    for (const workload of ["inl_from_kernel", "inl_from_qemu"]) {
      const [l1] = pair(rows, workload, 1);
      const [kvm, dvh] = pair(rows, workload, 2);
      expect(dvh.model).toBe("kvm-dvh-io");
      expect(count(kvm, "NESTED_EXIT_REFLECTED")).toBe(1);
      expect(count(dvh, "NESTED_EXIT_REFLECTED")).toBe(0);
      expect(count(dvh, "NESTED_EXIT_HANDLED_BY_L0")).toBe(1);
      expect(count(dvh, "HARDWARE_VM_EXIT")).toBe(1);
      expect(dvh.cyclesPerIteration - l1.cyclesPerIteration).toBe(21);
    }
    const [kvm, dvh] = pair(rows, "cpuid", 2);
    expect(dvh.counters).toEqual(kvm.counters);
  });

  it("every nestvisor command in an example's README runs as written", async () => {
    const readmes = readdirSync(EXAMPLES, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(EXAMPLES, e.name, "README.md"))
      .filter((path) => {
        try {
          return readFileSync(path, "utf8").includes("```sh");
        } catch {
          return false;
        }
      });
    expect(readmes.length).toBeGreaterThanOrEqual(3);
    const commands = readmes.flatMap((path) =>
      readmeCommands(readFileSync(path, "utf8")).map((args) => ({ path, args })),
    );
    expect(commands.length).toBeGreaterThanOrEqual(5);
    // In parallel: together they take several seconds of simulation.
    const results = await Promise.all(commands.map((c) => runCliAsync(c.args, { cwd: REPO })));
    results.forEach((r, i) => {
      const { path, args } = commands[i]!;
      expect(r.code, `${path}: nestvisor ${args.join(" ")}\n${r.stderr}`).toBe(0);
      if (args[0] === "compare") expect(r.stdout).toContain("✓ guest-visible results identical");
    });
  });

  it("readmeCommands joins continuation lines and skips comments", () => {
    expect(
      readmeCommands("x\n```sh\n# a comment\nnestvisor compare --a 1 \\\n  --b '^x/'\nls\n```\n"),
    ).toEqual([["compare", "--a", "1", "--b", "^x/"]]);
  });
});
