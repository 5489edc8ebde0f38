import { MMU_EVENTS } from "@nestvisor/mmu";
import {
  CPU_BASED_CTLS as C,
  CountingMeter,
  EXIT_REASON,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_EVENTS,
} from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { builtinWorkload } from "./builtin-workloads";
import { GPR } from "./guest-context";
import { HYPERVISOR_EVENTS } from "./hypervisor-events";
import { resolveFlags } from "./kernel-presets";
import { Machine } from "./machine";
import { runWorkload } from "./run-workload";
import { VMCS_FIELD as F, vmcsFieldEncoding } from "./vmcs-field-encodings";
import { loadWorkload } from "./workload-file";

/**
 * L0's decision on an exit of L2 (kvm: nested_vmx_l1_wants_exit and its helpers), asked directly
 * after changing what L1 wrote in vmcs12: the model's own L1 always writes the same controls as L0,
 * so these rules are only reachable this way (or with a custom guest hypervisor).
 */
function stoppedInL2() {
  const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
  const machine = new Machine({
    program: builtinWorkload("cpuid", { level: 2, iterations: 1 }),
    config: resolveFlags("v6.12", {}),
    meter,
  });
  const l0 = machine.kvms[0]!;
  expect(l0.nested.guestMode).toBe(true);
  const vmcs02 = machine.hardware.processor.current!;
  return { machine, l0, vmcs12: l0.nested.state.cachedVmcs12, vmcs02, l2: machine.contexts[1]!, meter };
}

type Stopped = ReturnType<typeof stoppedInL2>;

function setExec(s: Stopped, set: number, clear: number): void {
  const exec = s.vmcs12.read(F.CPU_BASED_VM_EXEC_CONTROL);
  s.vmcs12.write(F.CPU_BASED_VM_EXEC_CONTROL, ((exec | set) & ~clear) >>> 0);
}

/**
 * Poses the exit `reason` with `qualification` in vmcs02 of a machine stopped in L2 that `setup`
 * prepared, and asks L0 whether L1 takes it. A fresh machine each time: a reflected exit leaves L2.
 */
function reflects(setup: (s: Stopped) => void, reason: number, qualification = 0): boolean {
  const s = stoppedInL2();
  setup(s);
  s.vmcs02.write(F.EXIT_QUALIFICATION, qualification >>> 0, 0);
  s.l0.regs.reset();
  return s.l0.nested.reflectVmexit(reason);
}

const IO_BITMAP_PAGE = 0x30_0000;

function ioBitmap(s: Stopped, ports: readonly number[]): void {
  const memory = s.l0.guestMemory();
  for (let i = 0; i < 2 * 4096; i++) memory.write8(IO_BITMAP_PAGE + i, 0);
  s.vmcs12.write(F.IO_BITMAP_A, IO_BITMAP_PAGE, 0);
  s.vmcs12.write(F.IO_BITMAP_B, IO_BITMAP_PAGE + 4096, 0);
  for (const port of ports) {
    const at = IO_BITMAP_PAGE + (port >= 0x8000 ? 4096 : 0) + ((port & 0x7fff) >>> 3);
    memory.write8(at, memory.read8(at) | (1 << (port & 7)));
  }
}

/** SDM Table 28-5: size − 1 in bits 2:0, the port in bits 31:16. */
const ioQualification = (port: number, bytes: number) => ((bytes - 1) | (port << 16)) >>> 0;

describe("which L2 exits L1 takes (kvm: nested_vmx_l1_wants_exit)", () => {
  describe("I/O (nested_vmx_exit_handled_io)", () => {
    it("with I/O bitmaps, the bitmap decides for every byte of the access, not unconditional exiting", () => {
      const bitmaps = (uncond: boolean) => (s: Stopped) => {
        setExec(
          s,
          C.CPU_BASED_USE_IO_BITMAPS | (uncond ? C.CPU_BASED_UNCOND_IO_EXITING : 0),
          uncond ? 0 : C.CPU_BASED_UNCOND_IO_EXITING,
        );
        ioBitmap(s, [0x80, 0x8001]);
      };
      expect(reflects(bitmaps(false), EXIT_REASON.IO_INSTRUCTION, ioQualification(0x80, 1))).toBe(true);
      expect(reflects(bitmaps(false), EXIT_REASON.IO_INSTRUCTION, ioQualification(0x70, 1))).toBe(false);
      // A 4-byte access at 0x7fff covers 0x8001 in bitmap B.
      expect(reflects(bitmaps(false), EXIT_REASON.IO_INSTRUCTION, ioQualification(0x7fff, 4))).toBe(true);
      expect(reflects(bitmaps(false), EXIT_REASON.IO_INSTRUCTION, ioQualification(0x7ffc, 2))).toBe(false);
      // Unconditional exiting does not matter once bitmaps are used.
      expect(reflects(bitmaps(true), EXIT_REASON.IO_INSTRUCTION, ioQualification(0x70, 1))).toBe(false);
    });

    it("a word access that runs past port FFFFH exits", () => {
      const setup = (s: Stopped) => {
        setExec(s, C.CPU_BASED_USE_IO_BITMAPS, C.CPU_BASED_UNCOND_IO_EXITING);
        ioBitmap(s, []);
      };
      expect(reflects(setup, EXIT_REASON.IO_INSTRUCTION, ioQualification(0xffff, 2))).toBe(true);
    });

    it("without I/O bitmaps, unconditional I/O exiting decides", () => {
      const on = (s: Stopped) => setExec(s, C.CPU_BASED_UNCOND_IO_EXITING, C.CPU_BASED_USE_IO_BITMAPS);
      const off = (s: Stopped) => setExec(s, 0, C.CPU_BASED_UNCOND_IO_EXITING | C.CPU_BASED_USE_IO_BITMAPS);
      expect(reflects(on, EXIT_REASON.IO_INSTRUCTION, ioQualification(0x70, 1))).toBe(true);
      expect(reflects(off, EXIT_REASON.IO_INSTRUCTION, ioQualification(0x70, 1))).toBe(false);
    });

    it("vmcs02 always takes L2's port I/O unconditionally, without I/O bitmaps (prepare_vmcs02_early)", () => {
      const s = stoppedInL2();
      const exec = s.vmcs02.read(F.CPU_BASED_VM_EXEC_CONTROL);
      expect(exec & C.CPU_BASED_UNCOND_IO_EXITING).not.toBe(0);
      expect(exec & C.CPU_BASED_USE_IO_BITMAPS).toBe(0);
    });
  });

  it("WRMSR is decided by the write half of L1's MSR bitmap (nested_vmx_exit_handled_msr)", () => {
    // FS_BASE (C0000100H): the write bitmap for high MSRs is at 3072; the read bit stays clear.
    const interceptWrites = (s: Stopped) => {
      const bitmap = s.vmcs12.read(F.MSR_BITMAP) + s.vmcs12.hi * 2 ** 32;
      const memory = s.l0.guestMemory();
      const writeByte = bitmap + 3072 + (0x100 >>> 3);
      memory.write8(writeByte, memory.read8(writeByte) | 1);
      s.l2.setGpr(GPR.RCX, 0xc000_0100, 0);
    };
    expect(reflects(interceptWrites, EXIT_REASON.MSR_WRITE)).toBe(true);
    expect(reflects(interceptWrites, EXIT_REASON.MSR_READ)).toBe(false);
  });

  it("INVLPG goes to L1 only with INVLPG exiting in vmcs12", () => {
    expect(reflects((s) => setExec(s, 0, C.CPU_BASED_INVLPG_EXITING), EXIT_REASON.INVLPG, 0x1000)).toBe(
      false,
    );
    expect(reflects((s) => setExec(s, C.CPU_BASED_INVLPG_EXITING, 0), EXIT_REASON.INVLPG, 0x1000)).toBe(true);
  });

  describe("CR access (nested_vmx_exit_handled_cr), by the access type in bits 5:4", () => {
    const MOV_TO = 0 << 4;
    const MOV_FROM = 1 << 4;
    const CLTS = 2 << 4;
    const LMSW = 3 << 4;

    it("MOV to/from CR3 and CR8 follow their load and store exiting controls", () => {
      const cases = [
        { qual: 3 | MOV_TO, control: C.CPU_BASED_CR3_LOAD_EXITING },
        { qual: 3 | MOV_FROM, control: C.CPU_BASED_CR3_STORE_EXITING },
        { qual: 8 | MOV_TO, control: C.CPU_BASED_CR8_LOAD_EXITING },
        { qual: 8 | MOV_FROM, control: C.CPU_BASED_CR8_STORE_EXITING },
      ];
      for (const { qual, control } of cases) {
        const clear = (s: Stopped) => setExec(s, 0, control);
        const set = (s: Stopped) => setExec(s, control, 0);
        expect(reflects(clear, EXIT_REASON.CR_ACCESS, qual), `qualification ${qual}`).toBe(false);
        expect(reflects(set, EXIT_REASON.CR_ACCESS, qual), `qualification ${qual}`).toBe(true);
      }
      // MOV from CR0/CR4 never reaches L1 (it does not exit on hardware either).
      expect(reflects(() => {}, EXIT_REASON.CR_ACCESS, 0 | MOV_FROM)).toBe(false);
    });

    it("reads L2's CS AR bytes for the source register of a MOV to CR, not for a MOV from CR (kvm_register_read)", () => {
      const csArReads = (qualification: number): number => {
        const s = stoppedInL2();
        s.vmcs02.write(F.EXIT_QUALIFICATION, qualification >>> 0, 0);
        s.l0.regs.reset();
        const p = s.l0.processor;
        const vmread = p.vmread.bind(p);
        let reads = 0;
        p.vmread = (encoding: number) => {
          if (encoding === F.GUEST_CS_AR_BYTES) reads++;
          return vmread(encoding);
        };
        s.l0.nested.reflectVmexit(EXIT_REASON.CR_ACCESS);
        return reads;
      };
      // L2 runs in long mode, so is_64_bit_mode reads CS.L (once: the segment cache keeps it).
      expect(csArReads(3 | MOV_TO)).toBe(1);
      expect(csArReads(4 | MOV_TO)).toBe(1);
      expect(csArReads(3 | MOV_FROM)).toBe(0);
    });

    it("CLTS goes to L1 only when L1 owns CR0.TS and its read shadow has TS set", () => {
      const ownsTs = (shadowTs: boolean) => (s: Stopped) => {
        const mask = s.vmcs12.read(F.CR0_GUEST_HOST_MASK);
        const shadow = s.vmcs12.read(F.CR0_READ_SHADOW);
        s.vmcs12.write(F.CR0_GUEST_HOST_MASK, (mask | 8) >>> 0, 0xffffffff);
        s.vmcs12.write(F.CR0_READ_SHADOW, (shadowTs ? shadow | 8 : shadow & ~8) >>> 0, 0);
      };
      expect(reflects(ownsTs(false), EXIT_REASON.CR_ACCESS, CLTS)).toBe(false);
      expect(reflects(ownsTs(true), EXIT_REASON.CR_ACCESS, CLTS)).toBe(true);
    });

    it("LMSW: bits 3:1 L1 owns that change, or PE set while L1 shadows it clear", () => {
      const owns = (shadow: number) => (s: Stopped) => {
        s.vmcs12.write(F.CR0_GUEST_HOST_MASK, 0xf, 0xffffffff);
        s.vmcs12.write(F.CR0_READ_SHADOW, shadow, 0);
      };
      const lmsw = (source: number) => (LMSW | (source << 16)) >>> 0;
      expect(reflects(owns(0x2), EXIT_REASON.CR_ACCESS, lmsw(0x2))).toBe(false);
      expect(reflects(owns(0x2), EXIT_REASON.CR_ACCESS, lmsw(0x6))).toBe(true);
      expect(reflects(owns(0x2), EXIT_REASON.CR_ACCESS, lmsw(0x3))).toBe(true);
      // LMSW cannot clear PE: with PE shadowed as set, a source without PE changes nothing L1 owns.
      expect(reflects(owns(0x3), EXIT_REASON.CR_ACCESS, lmsw(0x2))).toBe(false);
    });
  });
});

describe("load_vmcs12_host_state on a nested exit", () => {
  /** Runs one more L2 CPUID round trip after `prepare` changed L1's vmcs12, and returns vmcs01. */
  function afterExit(prepare: (s: Stopped) => void) {
    const s = stoppedInL2();
    prepare(s);
    s.l0.regs.reset();
    expect(s.l0.nested.reflectVmexit(EXIT_REASON.CPUID)).toBe(true);
    expect(s.machine.hardware.processor.current).toBe(s.l0.vmcs01);
    return s;
  }

  it("loads the SYSENTER MSRs and the IDTR/GDTR bases from vmcs12's host state", () => {
    const values = [
      ["HOST_IA32_SYSENTER_CS", "GUEST_SYSENTER_CS", 0x10],
      ["HOST_IA32_SYSENTER_ESP", "GUEST_SYSENTER_ESP", 0x7000],
      ["HOST_IA32_SYSENTER_EIP", "GUEST_SYSENTER_EIP", 0x8100_0000],
      ["HOST_IDTR_BASE", "GUEST_IDTR_BASE", 0x5000],
      ["HOST_GDTR_BASE", "GUEST_GDTR_BASE", 0x6000],
    ] as const;
    const s = afterExit((s) => {
      for (const [host, , value] of values) s.vmcs12.write(vmcsFieldEncoding(host), value, 0xffffffff);
    });
    for (const [, guest, value] of values) {
      expect(s.l0.vmcs01.read(vmcsFieldEncoding(guest)), guest).toBe(value);
      // SYSENTER_CS is a 32-bit field; the others are natural-width.
      expect(s.l0.vmcs01.hi, guest).toBe(guest === "GUEST_SYSENTER_CS" ? 0 : 0xffffffff);
    }
    expect(s.l0.vmcs01.read(vmcsFieldEncoding("GUEST_IDTR_LIMIT"))).toBe(0xffff);
  });

  it("writes GUEST_IA32_PAT only with 'load IA32_PAT', from vmcs12's host PAT", () => {
    const PAT = vmcsFieldEncoding("GUEST_IA32_PAT");
    const HOST_PAT = vmcsFieldEncoding("HOST_IA32_PAT");
    const exitControls = (s: Stopped) => s.vmcs12.read(F.VM_EXIT_CONTROLS);
    const marker = { lo: 0x0007_0106, hi: 0x0007_0106 };
    const without = afterExit((s) => {
      s.vmcs12.write(F.VM_EXIT_CONTROLS, exitControls(s) & ~VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT);
      s.vmcs12.write(HOST_PAT, marker.lo, marker.hi);
      s.l0.vmcs01.write(PAT, 0x1234, 0);
    });
    expect(without.l0.vmcs01.read(PAT)).toBe(0x1234);
    const withLoad = afterExit((s) => {
      s.vmcs12.write(F.VM_EXIT_CONTROLS, (exitControls(s) | VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT) >>> 0);
      s.vmcs12.write(HOST_PAT, marker.lo, marker.hi);
    });
    expect(withLoad.l0.vmcs01.read(PAT)).toBe(marker.lo);
    expect(withLoad.l0.vmcs01.hi).toBe(marker.hi);
  });

  it("without 'load IA32_EFER' keeps the vCPU's EFER with LMA/LME from 'host address-space size'", () => {
    const s = afterExit((s) => {
      const controls = s.vmcs12.read(F.VM_EXIT_CONTROLS) & ~VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER;
      s.vmcs12.write(F.VM_EXIT_CONTROLS, (controls | VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE) >>> 0);
      s.vmcs12.write(F.HOST_IA32_EFER, 0x500, 0);
    });
    // L2's EFER (SCE, LME, LMA, NXE = 0xd01), not vmcs12's host EFER. It equals L0's own, so
    // vmx_set_efer switches no EFER through vmcs01 (update_transition_efer).
    expect(s.l0.mmu.efer).toBe(0xd01);
    expect(s.l0.vmcs01.read(F.VM_ENTRY_CONTROLS) & VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER).toBe(0);
    expect(s.l0.vmcs01.read(F.VM_EXIT_CONTROLS) & VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER).toBe(0);
  });
});

describe("vmcs02's MSR bitmap (kvm: nested_vmx_prepare_msr_bitmap)", () => {
  it("L2's SYSENTER MSRs exit to L0, which keeps vmcs12 current (vmx_set_msr in guest mode)", () => {
    const program = loadWorkload(`
name: sysenter_then_cpuid
setup:
  level: 2
steps:
  - wrmsr: { msr: 0x174, value: 0x23 }
  - wrmsr: { msr: 0x176, value: 0xffffffff81000000 }
  - cpuid: 0
  - rdmsr: 0x176
`);
    const meter = new CountingMeter([VMX_EVENTS, MMU_EVENTS, HYPERVISOR_EVENTS]);
    const machine = new Machine({ program, config: resolveFlags("v6.12", {}), meter });
    meter.reset();
    machine.run();
    const counts = meter.snapshot();
    // vmcs02's own bitmap intercepts SYSENTER (only FS/GS/KERNEL_GS_BASE, SPEC_CTRL, PRED_CMD and
    // FLUSH_CMD are merged): three exits L0 handles, and the CPUID L1 takes.
    expect(counts.NESTED_EXIT_HANDLED_BY_L0).toBe(3);
    expect(counts.NESTED_EXIT_REFLECTED).toBe(1);
    const vmcs12 = machine.kvms[0]!.nested.state.cachedVmcs12;
    expect(vmcs12.read(vmcsFieldEncoding("GUEST_SYSENTER_CS"))).toBe(0x23);
    expect(vmcs12.read(vmcsFieldEncoding("GUEST_SYSENTER_EIP")) + vmcs12.hi * 2 ** 32).toBe(
      0xffffffff81000000,
    );
    expect(machine.contexts[1]!.gprLo[GPR.RAX]).toBe(0x81000000);
  });

  it("passes a merged MSR through only when both vmcs01's bitmap and L1's do", () => {
    const s = stoppedInL2();
    const bitmap02 = s.vmcs02.read(F.MSR_BITMAP);
    expect(bitmap02).not.toBe(s.l0.vmcs01.read(F.MSR_BITMAP));
    const memory = s.machine.hardware.memory;
    // KERNEL_GS_BASE (C0000102H) reads: both pass it today.
    const readBit = () => (memory.read8(bitmap02 + 1024 + (0x102 >>> 3)) >>> (0x102 & 7)) & 1;
    expect(readBit()).toBe(0);
    // L1 starts intercepting it; the next nested entry merges that in.
    const l1Bitmap = s.vmcs12.read(F.MSR_BITMAP) + s.vmcs12.hi * 2 ** 32;
    const l1Memory = s.l0.guestMemory();
    const at = l1Bitmap + 1024 + (0x102 >>> 3);
    l1Memory.write8(at, l1Memory.read8(at) | (1 << (0x102 & 7)));
    s.machine.executor.cursor.reset();
    s.machine.run();
    expect(readBit()).toBe(1);
  });
});

describe("vmcs02's EPT pointer (kvm: construct_eptp)", () => {
  it("has A/D enabled in guest mode only when L1's EPTP12 enables it (nested_ept_ad_enabled)", () => {
    const s = stoppedInL2();
    expect(s.vmcs02.read(F.EPT_POINTER) & (1 << 6)).not.toBe(0);
    const eptp12 = s.vmcs12.read(F.EPT_POINTER);
    const hi = s.vmcs12.hi;
    s.vmcs12.write(F.EPT_POINTER, eptp12 & ~(1 << 6), hi);
    s.machine.executor.cursor.reset();
    s.machine.run();
    expect(s.machine.kvms[0]!.nested.guestMode).toBe(true);
    expect(s.vmcs02.read(F.EPT_POINTER) & (1 << 6)).toBe(0);
    // L1's own EPT pointer keeps A/D.
    expect(s.l0.vmcs01.read(F.EPT_POINTER) & (1 << 6)).not.toBe(0);
  });
});

describe("vmcs01 with PML (kvm: init_vmcs, enable_pml)", () => {
  it("has a log page and an empty log in every KVM's vmcs01, L1's as L0 sees it in vmcs12", () => {
    const s = stoppedInL2();
    const PML_ADDRESS = vmcsFieldEncoding("PML_ADDRESS");
    const GUEST_PML_INDEX = vmcsFieldEncoding("GUEST_PML_INDEX");
    expect(s.l0.vmcs01.read(PML_ADDRESS)).not.toBe(0);
    expect(s.l0.vmcs01.read(GUEST_PML_INDEX)).toBe(511);
    expect(s.vmcs12.read(PML_ADDRESS)).not.toBe(0);
    expect(s.vmcs12.read(GUEST_PML_INDEX)).toBe(511);
  });
});

describe("EPT violations of L2 under nested EPT", () => {
  it("are L0's exits; one EPT12 lacks is given to L1 by nested_ept_inject_page_fault, not reflected", () => {
    const r = runWorkload({
      program: builtinWorkload("touch_memory", { level: 2, pages: 16 }),
      config: resolveFlags("v6.12", {}),
    });
    // kvm: nested_vmx_l0_wants_exit keeps every EPT violation with nested EPT; L0's walk of EPT12 then
    // finds the page unmapped and makes the nested VM exit itself.
    expect(r.counts.NESTED_EXIT_REFLECTED ?? 0).toBe(0);
    expect(r.counts.NESTED_EPT_FAULT_INJECTED).toBeGreaterThanOrEqual(16);
    expect(r.counts.NESTED_EPT_FAULT_INJECTED).toBe(r.counts.NESTED_VM_EXIT);
    expect(r.counts.NESTED_EXIT_HANDLED_BY_L0).toBeGreaterThanOrEqual(2 * 16);
  });
});
