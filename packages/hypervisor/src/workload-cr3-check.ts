/**
 * Load-time checks of the literal CR3 values a workload loads (`movToCr3: 0x…`), against the
 * machine that will run it: the modelled CPU's MAXPHYADDR and the guest-physical memory the machine
 * gives the workload (its RAM, then its page tables right above it; machine.ts).
 *
 * Without them a CR3 beyond MAXPHYADDR ran on: silently at level 1 (the walk used the address
 * with its high bits dropped, or took a guest fault), as a VM-entry failure ("no handler for exit
 * reason 33") when the guest hypervisor resumed a nested guest, or as a RangeError ("hits no RAM
 * (MMIO is not modelled)"); a CR3 inside MAXPHYADDR but past the guest's memory failed with that
 * RangeError at the first walk. The architecture says the first is a #GP on the MOV (reserved CR3
 * bits, SDM Vol. 3A 4.5 and Vol. 2B "MOV—Move to/from Control Registers"), which the model does
 * not deliver; the second reads memory the model does not have.
 */
import { MODERN_CPU, PAGING_MODE, type PagingMode } from "@nestvisor/x86-arch";
import { guestPhysicalBytes } from "./guest-page-tables";
import type { WorkloadSetup } from "./workload-ops";
import { formatNumber } from "./workload-spec";

/** Where a workload's guest-physical memory ends: RAM, then the page tables (machine.ts). */
export function guestPhysicalEnd(setup: WorkloadSetup): number {
  if (setup.pagingMode === PAGING_MODE.NONE) return setup.memoryBytes;
  return guestPhysicalBytes(setup);
}

/** The root paging structure CR3 points at, and the CR3 bits that hold its address (SDM 4.3–4.5). */
function rootTable(mode: PagingMode): { name: string; mask: bigint } | undefined {
  switch (mode) {
    case PAGING_MODE.BIT32:
      return { name: "page directory", mask: 0xffff_f000n }; // bits 31:12
    case PAGING_MODE.PAE:
      return { name: "page-directory-pointer table", mask: 0xffff_ffe0n }; // bits 31:5
    case PAGING_MODE.LEVEL4:
      return { name: "PML4 table", mask: 0x000f_ffff_ffff_f000n }; // bits 51:12 (M-1:12)
    case PAGING_MODE.LEVEL5:
      return { name: "PML5 table", mask: 0x000f_ffff_ffff_f000n };
    default:
      return undefined;
  }
}

/**
 * What is wrong with loading `value` (bit 63, the no-flush bit, already stripped) into CR3 in a
 * workload with `setup` whose guest-physical memory ends at `physicalEnd`, or undefined. With
 * paging off CR3 is not used and nothing is checked. `maxPhysAddr` is the modelled CPU's.
 */
export function literalCr3Problem(
  value: bigint,
  setup: WorkloadSetup,
  physicalEnd: number,
  maxPhysAddr: number = MODERN_CPU.maxPhysAddr,
): string | undefined {
  const table = rootTable(setup.pagingMode);
  if (table === undefined) return undefined;
  const limit = 1n << BigInt(maxPhysAddr);
  // Outside IA-32e mode CR3 is 32 bits (the compiler refuses wider values), below any MAXPHYADDR.
  if (value >= limit) {
    return (
      `${formatNumber(value)} is beyond MAXPHYADDR: the modelled CPU has ${maxPhysAddr}-bit physical ` +
      `addresses, so CR3 bits 62:${maxPhysAddr} must be clear (a CR3 below ${formatNumber(limit)}; ` +
      "SDM 4.5: they are reserved, and MOV to CR3 would #GP)"
    );
  }
  const address = value & table.mask;
  if (address >= BigInt(physicalEnd)) {
    return (
      `${formatNumber(value)} puts the ${table.name} at ${formatNumber(address)}, outside the guest's ` +
      `physical memory (${formatNumber(setup.memoryBytes)} bytes of RAM, then its page tables, up to ` +
      `${formatNumber(physicalEnd - 1)}): the walk would read no RAM, and MMIO is not modelled`
    );
  }
  return undefined;
}
