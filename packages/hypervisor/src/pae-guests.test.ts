import { CountingMeter } from "@nestvisor/vmx";
import { loadPdptes, MODERN_CPU } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { VMCS_FIELD as F, GUEST_PDPTR_FIELDS } from "./vmcs-field-encodings";
import { workload } from "./workload-builder";
import type { PagingName } from "./workload-spec";

/**
 * Two address spaces mapping the same GVA to different frames, switched with MOV to CR3 (which
 * under PAE paging loads the new PDPTEs), with writes and reads on both sides.
 */
function program(level: 1 | 2 | 3, paging: PagingName) {
  return workload("pae-switch")
    .setup({
      level,
      paging,
      memory: "16MiB",
      addressSpaces: [
        {
          name: "a",
          mappings: [
            { gva: 0x100000, pages: 64 },
            { gva: 0x4000_0000, pages: 4, gpa: 0x200000 },
          ],
        },
        { name: "b", mappings: [{ gva: 0x100000, pages: 64, gpa: 0x300000 }] },
      ],
    })
    .loop(3, (b) =>
      b
        .write(0x100000, { size: 8, value: 5, stride: 4096 })
        .read(0x4000_0000)
        .movToCr3({ space: "b" })
        .read(0x100000)
        .write(0x100000 + 8192, { value: 9 })
        .movToCr3({ space: "a" })
        .read(0x100000 + 8192)
        .cpuid(0),
    )
    .build();
}

function run(level: 1 | 2 | 3, paging: PagingName, flags: Record<string, boolean> = {}) {
  const m = new Machine({
    program: program(level, paging),
    config: resolveFlags("v6.12", flags),
    meter: new CountingMeter(COST_CATALOGS),
  });
  m.run();
  return m;
}

const CONFIGS: [string, 1 | 2 | 3, Record<string, boolean>][] = [
  ["L1 with EPT", 1, {}],
  ["L1 on shadow paging (a PAE shadow root)", 1, { ept: false }],
  ["L2 with nested EPT", 2, {}],
  ["L2 with L1 on shadow paging", 2, { l1Ept: false }],
  ["L3", 3, {}],
];

describe("PAE guests in the machine (the PDPTE registers, SDM 4.4.1 and 27.3.2.4)", () => {
  const reference = run(1, "4-level").executor.observations.digest;

  it.each(CONFIGS)("%s: the same guest-visible results as under 4-level paging", (_name, level, flags) => {
    const m = run(level, "pae", flags);
    expect(m.executor.observations.guestFaults).toBe(0);
    expect(m.executor.observations.digest).toBe(reference);
  });

  it("32-bit paging agrees too", () => {
    expect(run(1, "32-bit").executor.observations.digest).toBe(reference);
  });

  it.each(CONFIGS.filter(([, , flags]) => flags.ept !== false))(
    "%s: the running VMCS holds the PDPTEs of the table CR3 names after the guest's MOV to CR3",
    (_name, level, flags) => {
      const m = run(level, "pae", flags);
      const vmcs = m.hardware.runningVmcs!;
      const cr3 = vmcs.read(F.GUEST_CR3);
      const held = GUEST_PDPTR_FIELDS.map((field) => vmcs.read(field) + vmcs.hi * 2 ** 32);
      if (flags.l1Ept === false) {
        // L1 shadow-pages L2: CR3 is L1's PAE shadow root, whose PDPTEs L0 loaded (load_pdptrs).
        expect(held.some((v) => v !== 0)).toBe(true);
        return;
      }
      const leafMemory = m.kvms[level - 1]!.guestMemory();
      const loaded = loadPdptes(leafMemory, cr3, MODERN_CPU);
      expect(loaded.ok && loaded.pdptes).toEqual(held);
    },
  );
});
