import { CountingMeter } from "@nestvisor/vmx";
import { loadPdptes, MODERN_CPU } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { runWorkload } from "./run-workload";
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

  it.each(CONFIGS)("%s: 32-bit paging agrees too", (_name, level, flags) => {
    // Without EPT the processor walks KVM's PAE shadow of the 32-bit tables: vmx_set_cr4 keeps
    // CR4.PAE on in GUEST_CR4 (KVM_PMODE_VM_CR4_ALWAYS_ON).
    const m = run(level, "32-bit", flags);
    expect(m.executor.observations.guestFaults).toBe(0);
    expect(m.executor.observations.digest).toBe(reference);
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

describe("is_64_bit_mode outside long mode", () => {
  /** The GUEST_CS_AR_BYTES and GUEST_CS_BASE reads L0 makes while a level-1 guest runs `paging`. */
  function csReads(paging: PagingName) {
    const m = new Machine({
      program: workload("cs-reads")
        .setup({ level: 1, paging, memory: "16MiB" })
        .vmcall()
        .in(0x1234, 4)
        .build(),
      config: resolveFlags("v6.12", {}),
      meter: new CountingMeter(COST_CATALOGS),
    });
    const p = m.kvms[0]!.processor;
    const vmread = p.vmread.bind(p);
    const reads = { ar: 0, base: 0 };
    p.vmread = (encoding: number) => {
      if (encoding === F.GUEST_CS_AR_BYTES) reads.ar++;
      if (encoding === F.GUEST_CS_BASE) reads.base++;
      return vmread(encoding);
    };
    m.run();
    return reads;
  }

  it("reads no CS AR bytes for a PAE guest's VMCALL and user-space IN, and the CS base for the IN's linear RIP", () => {
    // kvm: is_64_bit_hypercall / kvm_get_linear_rip → is_64_bit_mode, false without EFER.LMA;
    // kvm_get_linear_rip then adds the CS base (vmx_get_segment_base).
    expect(csReads("pae")).toEqual({ ar: 0, base: 1 });
    // In 64-bit mode each exit reads CS.L once (the segment cache is reset per exit) and no base.
    expect(csReads("4-level")).toEqual({ ar: 2, base: 0 });
  });

  it("returns VMCALL's -KVM_ENOSYS in 32 bits to a PAE guest and in 64 to a 64-bit one (kvm_emulate_hypercall)", () => {
    const rax = (paging: PagingName) =>
      runWorkload({
        program: workload("vmcall").setup({ level: 1, paging, memory: "16MiB" }).vmcall().build(),
        config: resolveFlags("v6.12", {}),
      }).snapshot.gprs[0];
    expect(rax("pae")).toBe("0xfffffc18");
    expect(rax("4-level")).toBe("0xfffffffffffffc18");
  });
});
