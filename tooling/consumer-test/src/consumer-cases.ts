/**
 * What a consumer does with each library, once installed from its tarball. `PACKAGE` in the
 * sources stands for the package's name (substituted at run time, so the layer check never sees
 * a tooling package importing a library).
 */
export interface ConsumerCase {
  /** Value exports that must exist on the module namespace. */
  readonly exports: readonly string[];
  /**
   * The body of an async function run as an ES module after `import * as m from "PACKAGE"`; it may
   * use `readFileSync` and must return JSON-serialisable data.
   */
  readonly runtime: string;
  /** What `runtime` must return. */
  readonly expected: unknown;
  /**
   * A consumer's TypeScript file. It annotates results with the library's own types and holds a
   * `@ts-expect-error` line, which fails the check if the types degrade to `any`.
   */
  readonly types: string;
}

export const PACKAGE_PLACEHOLDER = "PACKAGE";

export const CONSUMER_CASES: Readonly<Record<string, ConsumerCase>> = {
  "x86-arch": {
    exports: [
      "CR0",
      "CR4",
      "EFER",
      "MSR",
      "decodeRegister",
      "createPagingContext",
      "PageWalker",
      "EptWalker",
      "TwoDimensionalWalker",
      "Tlb",
      "DenseMemory",
      "SparseMemory",
    ],
    runtime: `
      const decoded = m.decodeRegister(m.CR0_LAYOUT, (m.CR0.PE | m.CR0.PG) >>> 0);
      const memory = new m.DenseMemory(4096);
      memory.write32(8, 0xdeadbeef);
      return {
        pe: decoded.fields.PE,
        pg: decoded.fields.PG,
        wp: decoded.fields.WP,
        word: memory.read32(8),
        fault: m.summarizePageFaultErrorCode(m.PFERR.PRESENT | m.PFERR.WRITE),
      };`,
    expected: {
      pe: true,
      pg: true,
      wp: false,
      word: 0xdeadbeef,
      fault: "protection violation, supervisor write",
    },
    types: `import {
  CR0,
  CR0_LAYOUT,
  type DecodedRegister,
  DenseMemory,
  decodeRegister,
  PFERR,
  type PhysicalMemory,
  summarizePageFaultErrorCode,
} from "PACKAGE";

const decoded: DecodedRegister = decodeRegister(CR0_LAYOUT, (CR0.PE | CR0.PG) >>> 0);
const memory: PhysicalMemory = new DenseMemory(4096);
memory.write32(8, 0xdeadbeef);
const word: number = memory.read32(8);
const fault: string = summarizePageFaultErrorCode(PFERR.PRESENT | PFERR.WRITE);
// @ts-expect-error a layout is required
decodeRegister(0);
export { decoded, fault, word };
`,
  },
  vmx: {
    exports: [
      "VMCS_FIELDS",
      "fieldByName",
      "Vmcs12",
      "CountingMeter",
      "HardwareVmcs",
      "VmcsProcessor",
      "KVM_DEFAULT_VMX_CAPABILITIES",
      "decodeExitReason",
      "VmxInstructionEmulator",
      "ShadowVmcsSync",
      "checkNestedVmEntry",
      "ENTRY_CHECK_RULES",
    ],
    runtime: `
      return {
        guestRip: m.fieldByName("GUEST_RIP").encoding,
        exit48: m.decodeExitReason(48).name,
        exit10: m.exitReasonName(10),
      };`,
    expected: { guestRip: 0x681e, exit48: "EPT_VIOLATION", exit10: "CPUID" },
    types: `import { type DecodedExitReason, decodeExitReason, fieldByName, type VmcsField } from "PACKAGE";

const field: VmcsField | undefined = fieldByName("GUEST_RIP");
const encoding: number | undefined = field?.encoding;
const reason: DecodedExitReason = decodeExitReason(48);
const name: string | undefined = reason.name;
// @ts-expect-error an encoding is a number
const wrong: string = fieldByName("GUEST_RIP")?.encoding;
export { encoding, name, wrong };
`,
  },
  mmu: {
    exports: [
      "decodePageRole",
      "encodePageRole",
      "updatePermissionBitmask",
      "VcpuMmu",
      "Memslots",
      "TdpMmu",
      "ShadowMmu",
      "ShadowEptMmu",
      "auditTables",
      "mmuFlagPreset",
    ],
    runtime: `
      const fields = { ...m.decodePageRole(0), level: 4, direct: true, access: m.ACC.ALL };
      const role = m.decodePageRole(m.encodePageRole(fields));
      return { level: role.level, direct: role.direct, access: role.access, preset: typeof m.mmuFlagPreset("v6.12") };`,
    expected: { level: 4, direct: true, access: 7, preset: "object" },
    types: `import { ACC, decodePageRole, encodePageRole, type MmuFlags, mmuFlagPreset, type PageRoleFields } from "PACKAGE";

const role: PageRoleFields = { ...decodePageRole(0), level: 4, direct: true, access: ACC.ALL };
const word: number = encodePageRole(role);
const flags: MmuFlags = mmuFlagPreset("v6.12");
// @ts-expect-error page-role fields are read-only
role.level = 3;
export { flags, word };
`,
  },
  hypervisor: {
    exports: [
      "Machine",
      "Kvm",
      "runWorkload",
      "loadWorkload",
      "builtinWorkload",
      "kernelPreset",
      "resolveFlags",
    ],
    // The example workload shipped in the tarball, parsed (with the yaml dependency) and run
    // nested at level 2 through every layer as installed from the tarballs.
    runtime: `
      const url = new URL("examples/workloads/cpuid-vmcall.yaml", import.meta.resolve("PACKAGE/package.json"));
      const program = m.loadWorkload(readFileSync(url, "utf8"), "cpuid-vmcall.yaml");
      const result = m.runWorkload({ program, config: m.resolveFlags("v6.12", {}) });
      return {
        workload: result.workload,
        level: result.level,
        iterations: result.iterations,
        cpuidExits: result.counts.EXIT_HANDLER_CPUID,
        vmcallExits: result.counts.EXIT_HANDLER_VMCALL,
      };`,
    expected: { workload: "cpuid_vmcall", level: 2, iterations: 500, cpuidExits: 500, vmcallExits: 500 },
    types: `import { loadWorkload, type RunResult, resolveFlags, runWorkload, type WorkloadProgram } from "PACKAGE";

const program: WorkloadProgram = loadWorkload("name: spin\\nsetup: { level: 1 }\\nsteps:\\n  - compute: 10\\n", "spin.yaml");
const result: RunResult = runWorkload({ program, config: resolveFlags("v6.12", {}) });
const cycles: number = result.cyclesPerIteration;
// @ts-expect-error a KVM configuration is required
runWorkload({ program });
export { cycles };
`,
  },
};

/** Substitutes the package name for the placeholder. */
export function forPackage(text: string, name: string): string {
  return text.replaceAll(PACKAGE_PLACEHOLDER, name);
}
