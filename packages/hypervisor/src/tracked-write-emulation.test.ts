import { CountingMeter, fieldByEncoding } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { COST_CATALOGS } from "./cost-catalogs";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";

/**
 * L1 writes its EPT12 tables, which L0 write-tracks: each store is an EPT violation that L0 emulates
 * (kvm: page_fault_handle_page_track → x86_emulate_instruction). What L0 reads and writes in the VMCS
 * from the tracked write to the next entry.
 */
describe("an emulated store to a write-tracked page", () => {
  it("reads RIP, CS.L, RFLAGS, CR4, the CPL, CR3 and CR0, then the interrupt shadow, and writes RFLAGS", () => {
    const m = new Machine({
      program: builtinWorkload("touch_memory", { level: 2, pages: 4 }),
      config: resolveFlags("v6.12", {}),
      meter: new CountingMeter(COST_CATALOGS),
    });
    const l0 = m.kvms[0]!;
    const p = l0.processor;
    const runs: { accesses: string[]; emulated: boolean }[] = [];
    let current: { accesses: string[]; emulated: boolean } | null = null;
    const name = (encoding: number) => fieldByEncoding(encoding)?.name ?? String(encoding);
    const vmread = p.vmread.bind(p);
    p.vmread = (encoding: number) => {
      const field = name(encoding);
      // The entry that follows starts with vmx_sync_pir_to_irr's RVI read.
      if (field === "GUEST_INTR_STATUS") current = null;
      current?.accesses.push(`read ${field}`);
      // handle_ept_violation reads the faulting gpa; what follows is the fault and its emulation.
      if (field === "GUEST_PHYSICAL_ADDRESS" && !l0.nested.guestMode) {
        current = { accesses: [], emulated: false };
        runs.push(current);
      }
      return vmread(encoding);
    };
    const vmwrite = p.vmwrite.bind(p);
    p.vmwrite = (encoding: number, lo: number, hi?: number) => {
      current?.accesses.push(`write ${name(encoding)}`);
      return vmwrite(encoding, lo, hi);
    };
    const shadow = l0.shadow;
    const trackedWrite = shadow.trackedWrite.bind(shadow);
    shadow.trackedWrite = (gpa: number, bytes: number, paePaging?: boolean) => {
      if (current !== null) current.emulated = true;
      return trackedWrite(gpa, bytes, paePaging);
    };
    m.run();
    const emulated = runs.filter((r) => r.emulated);
    expect(emulated.length).toBeGreaterThan(0);
    for (const { accesses } of emulated) {
      expect(accesses).toEqual([
        "read GUEST_RIP",
        "read GUEST_CS_AR_BYTES",
        "read GUEST_RFLAGS",
        "read GUEST_CR4",
        "read GUEST_SS_AR_BYTES",
        "read GUEST_CR3",
        "read GUEST_CR0",
        "read GUEST_INTERRUPTIBILITY_INFO",
        "write GUEST_RFLAGS",
      ]);
    }
  });
});
