import {
  adjustControls,
  CONTROL_CLASS,
  CPU_BASED_CTLS,
  entryCheckControlMsr,
  PIN_BASED_CTLS,
  VM_ENTRY_CTLS,
  VM_EXIT_CTLS,
  VMX_RESULT,
  type VmxCapabilities,
} from "@nestvisor/vmx";
import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import { L1, type VmxWorld } from "./vmx-world";

/** CR0 of a 64-bit Linux L1 and its guest: PE, MP, ET, NE, WP, AM, PG. */
export const LINUX_CR0 = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
/** CR4 with what a 64-bit kernel sets and VMX enabled. */
export const LINUX_CR4 = (CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.VMXE) >>> 0;
export const LINUX_EFER = (EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE) >>> 0;
/** The PAT Linux programs at boot (pat_init): WB, WC, UC-, UC, WB, WP, UC-, WT. */
export const LINUX_PAT = 0x0407050600070106n;

/** The baseline's control values (what the cases start from and modify). */
export interface BaselineControls {
  readonly pin: number;
  readonly primary: number;
  readonly exit: number;
  readonly entry: number;
}

export function baselineControls(caps: VmxCapabilities): BaselineControls {
  const adj = (cls: "pin" | "primary" | "exit" | "entry", wanted: number) => {
    const msr = entryCheckControlMsr(caps, cls);
    return adjustControls(msr.lo, msr.hi, wanted);
  };
  return {
    // Interrupt and NMI exiting with virtual NMIs (vmx-tests.md §0).
    pin: adj(
      CONTROL_CLASS.PIN,
      PIN_BASED_CTLS.PIN_BASED_EXT_INTR_MASK |
        PIN_BASED_CTLS.PIN_BASED_NMI_EXITING |
        PIN_BASED_CTLS.PIN_BASED_VIRTUAL_NMIS,
    ),
    primary: adj(CONTROL_CLASS.PRIMARY, CPU_BASED_CTLS.CPU_BASED_HLT_EXITING),
    exit: adj(
      CONTROL_CLASS.EXIT,
      VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_EFER |
        VM_EXIT_CTLS.VM_EXIT_HOST_ADDR_SPACE_SIZE |
        VM_EXIT_CTLS.VM_EXIT_LOAD_IA32_PAT,
    ),
    entry: adj(
      CONTROL_CLASS.ENTRY,
      VM_ENTRY_CTLS.VM_ENTRY_LOAD_IA32_EFER | VM_ENTRY_CTLS.VM_ENTRY_IA32E_MODE,
    ),
  };
}

/**
 * The fields of a vmcs12 that passes every VM-entry check, as kvm-unit-tests' init_vmcs lays one out
 * (vmx-tests.md §0): the controls above, no secondary controls, CR3-target count 0, a non-zero VPID,
 * link pointer all ones, a 64-bit Linux host (kernel CS 0x10, DS 0x18, TSS 0x40) and a 64-bit flat
 * guest (CS AR 0xa09b, data 0xc093, LDTR 0x82, busy 64-bit TSS 0x8b), RFLAGS 0x2, active, not
 * blocked. Values in L1's memory are inside the world's 4 MiB.
 */
export function baselineFields(caps: VmxCapabilities): [name: string, value: bigint | number][] {
  const c = baselineControls(caps);
  const fields: [string, bigint | number][] = [
    ["PIN_BASED_VM_EXEC_CONTROL", c.pin],
    ["CPU_BASED_VM_EXEC_CONTROL", c.primary],
    ["SECONDARY_VM_EXEC_CONTROL", 0],
    ["VM_EXIT_CONTROLS", c.exit],
    ["VM_ENTRY_CONTROLS", c.entry],
    ["EXCEPTION_BITMAP", 0],
    ["CR3_TARGET_COUNT", 0],
    ["VIRTUAL_PROCESSOR_ID", 1],
    ["VMCS_LINK_POINTER", 0xffffffffffffffffn],
    ["VM_EXIT_MSR_STORE_COUNT", 0],
    ["VM_EXIT_MSR_LOAD_COUNT", 0],
    ["VM_ENTRY_MSR_LOAD_COUNT", 0],
    ["VM_ENTRY_INTR_INFO_FIELD", 0],
    ["HOST_CR0", LINUX_CR0],
    ["HOST_CR3", L1.HOST_CR3],
    ["HOST_CR4", LINUX_CR4],
    ["HOST_IA32_EFER", LINUX_EFER],
    ["HOST_IA32_PAT", LINUX_PAT],
    ["HOST_CS_SELECTOR", 0x10],
    ["HOST_SS_SELECTOR", 0x18],
    ["HOST_DS_SELECTOR", 0x18],
    ["HOST_ES_SELECTOR", 0x18],
    ["HOST_FS_SELECTOR", 0x18],
    ["HOST_GS_SELECTOR", 0x18],
    ["HOST_TR_SELECTOR", 0x40],
    ["HOST_FS_BASE", 0],
    ["HOST_GS_BASE", 0xffff888100000000n],
    ["HOST_TR_BASE", 0xfffffe0000003000n],
    ["HOST_GDTR_BASE", 0xfffffe0000001000n],
    ["HOST_IDTR_BASE", 0xfffffe0000000000n],
    ["HOST_IA32_SYSENTER_CS", 0x10],
    ["HOST_IA32_SYSENTER_ESP", 0xfffffe0000002000n],
    ["HOST_IA32_SYSENTER_EIP", 0xffffffff81a00000n],
    ["HOST_RIP", 0xffffffff81000000n],
    ["HOST_RSP", 0xffffc90000004000n],
    ["GUEST_CR0", LINUX_CR0],
    ["GUEST_CR3", L1.GUEST_CR3],
    ["GUEST_CR4", LINUX_CR4],
    ["GUEST_IA32_EFER", LINUX_EFER],
    ["GUEST_IA32_PAT", LINUX_PAT],
    ["GUEST_DR7", 0x400],
    ["GUEST_IA32_DEBUGCTL", 0],
    ["GUEST_CS_SELECTOR", 0x8],
    ["GUEST_CS_BASE", 0],
    ["GUEST_CS_LIMIT", 0xffffffff],
    ["GUEST_CS_AR_BYTES", 0xa09b],
  ];
  for (const s of ["SS", "DS", "ES", "FS", "GS"]) {
    fields.push(
      [`GUEST_${s}_SELECTOR`, 0x10],
      [`GUEST_${s}_BASE`, 0],
      [`GUEST_${s}_LIMIT`, 0xffffffff],
      [`GUEST_${s}_AR_BYTES`, 0xc093],
    );
  }
  fields.push(
    ["GUEST_LDTR_SELECTOR", 0],
    ["GUEST_LDTR_BASE", 0],
    ["GUEST_LDTR_LIMIT", 0xffff],
    ["GUEST_LDTR_AR_BYTES", 0x82],
    ["GUEST_TR_SELECTOR", 0x18],
    ["GUEST_TR_BASE", 0x6000],
    ["GUEST_TR_LIMIT", 0x67],
    ["GUEST_TR_AR_BYTES", 0x8b],
    ["GUEST_GDTR_BASE", 0x4000],
    ["GUEST_GDTR_LIMIT", 0xffff],
    ["GUEST_IDTR_BASE", 0x5000],
    ["GUEST_IDTR_LIMIT", 0xfff],
    ["GUEST_SYSENTER_CS", 0x10],
    ["GUEST_SYSENTER_ESP", 0],
    ["GUEST_SYSENTER_EIP", 0],
    ["GUEST_RIP", 0x400000],
    ["GUEST_RSP", 0x500000],
    ["GUEST_RFLAGS", 0x2],
    ["GUEST_ACTIVITY_STATE", 0],
    ["GUEST_INTERRUPTIBILITY_INFO", 0],
    ["GUEST_PENDING_DBG_EXCEPTIONS", 0],
  );
  return fields;
}

/**
 * VMXON, VMCLEAR + VMPTRLD of a VMCS, and VMWRITEs of the baseline (each an L1 instruction, through
 * the shadow VMCS where the bitmaps allow). Throws if any of them fails: the world is unusable.
 */
export function loadBaseline(world: VmxWorld): VmxWorld {
  world.enterVmxWithCurrent();
  for (const [name, value] of baselineFields(world.emulator.capabilities)) {
    const r = world.write(name, value);
    if (r !== VMX_RESULT.SUCCEED) throw new Error(`baseline VMWRITE of ${name} failed with ${r}`);
  }
  return world;
}
