import type { Command, CommandGroup, PassthroughCommand } from "../framework/command";

/**
 * Every top-level command with its one-line summary. Commands are loaded only when run (each is
 * its own chunk of the bundle), so `nestvisor --version` and `nestvisor --help` load no model code.
 */
export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Command | CommandGroup | PassthroughCommand>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "compare",
    summary: "run workloads under kernel presets (or flag ablations) and compare cycles per iteration",
    load: () => import("./compare").then((m) => m.compareCommand),
  },
  {
    name: "run",
    summary: "run one workload: cycles by level and exit reason (p50/p99), event counts, Perfetto trace",
    load: () => import("./run").then((m) => m.runCommand),
  },
  {
    name: "explain",
    summary: "walk through one nested round trip step by step, with the flags that change each step",
    load: () => import("./explain").then((m) => m.explainCommand),
  },
  {
    name: "sweep",
    summary:
      "run a grid (workloads × levels × presets × flags × profiles × models) on every core; resumable, shardable",
    load: () => import("./sweep").then((m) => m.sweepCommand),
  },
  {
    name: "test",
    summary: "run the conformance suites (kvm-unit-tests style) against the KVM model or a model module",
    load: () => import("./test").then((m) => m.testCommand),
  },
  {
    name: "decode",
    summary:
      "decode a value from a KVM trace or dump: VMCS field, MMU role, #PF code, exit reason, CRs, PTEs",
    load: () => import("./decode").then((m) => m.decodeCommand),
  },
  {
    name: "vmcs12",
    summary: "print KVM's vmcs12 layout, or decode a vmcs12 region / KVM_GET_NESTED_STATE dump",
    load: () => import("./vmcs12").then((m) => m.vmcs12Group),
  },
  {
    name: "walk",
    summary: "run a page walk from a JSON scenario (or JSON lines on stdin with --batch)",
    load: () => import("./walk").then((m) => m.walkCommand),
  },
  {
    name: "trace",
    summary: "read trace-cmd / perf script KVM traces: a perf-kvm-stat table, or a replay through the model",
    load: () => import("./trace").then((m) => m.traceGroup),
  },
  {
    name: "workloads",
    summary: "list the built-in workloads and their parameters",
    load: () => import("./workloads").then((m) => m.workloadsCommand),
  },
  {
    name: "flags",
    summary: "list the optimization flags and switches, with the patch series each comes from",
    load: () => import("./flags").then((m) => m.flagsCommand),
  },
  {
    name: "presets",
    summary: "list the kernel presets and the flags each one turns on",
    load: () => import("./presets").then((m) => m.presetsCommand),
  },
  {
    name: "profiles",
    summary: "list the cost profiles (cycles per counted event) and where their numbers come from",
    load: () => import("./profiles").then((m) => m.profilesCommand),
  },
];
