/**
 * The memory-mapped devices a KVM instance completes its guest's MMIO with: loads and stores to
 * guest-physical addresses no memslot holds. Each level's KVM has its own set (as it has its own
 * port-I/O devices), all in one device window below 4 GiB, so a workload reaches them by mapping a
 * GVA to a window address. Three kinds of device, as KVM sees them:
 *
 * - **in-kernel**: KVM's IOAPIC at 0xfec00000 on KVM_MMIO_BUS (kvm: kvm_ioapic_init,
 *   ioapic_mmio_ops; 0x100 bytes). Completed inside KVM after instruction emulation.
 * - **eventfd doorbell**: a virtio-pci notification register at 0xfe003000, for which the VMM
 *   registered an ioeventfd of length 0, which KVM puts on KVM_FAST_MMIO_BUS as well as
 *   KVM_MMIO_BUS (kvm: kvm_assign_ioeventfd_idx). A store there signals the eventfd inside KVM; on an
 *   EPT misconfiguration KVM does that without decoding the instruction (kvm: handle_ept_misconfig).
 *   A load is not the eventfd's (ioeventfds have no read): it goes to the VMM.
 * - **user space**: the rest of the window is the VMM's (QEMU): KVM_EXIT_MMIO to user space, its
 *   device emulation, KVM_RUN again. The model's VMM backs 0xfe000000–0xfe000fff with a register page
 *   that reads back what was last stored (zero at reset, little-endian); other window addresses read
 *   as zero and ignore stores (QEMU's unassigned-memory behaviour for MMIO).
 *
 * Device state is guest-visible and depends only on the accesses, never on simulated cycles.
 */

/** The device window: guest-physical [MMIO_WINDOW_BASE, MMIO_WINDOW_END) (below the HPET and LAPIC). */
export const MMIO_WINDOW_BASE = 0xfe00_0000;
export const MMIO_WINDOW_END = 0xfed0_0000;

/** kvm: IOAPIC_DEFAULT_BASE_ADDRESS and IOAPIC_MEM_LENGTH. */
export const IOAPIC_BASE = 0xfec0_0000;
export const IOAPIC_LENGTH = 0x100;
/** The user-space VMM's register page. */
export const VMM_REGISTERS_BASE = 0xfe00_0000;
/** The eventfd doorbell (a virtio-pci notify register; the ioeventfd matches this address only). */
export const DOORBELL_ADDRESS = 0xfe00_3000;

/** Whether [gpa, gpa + bytes) lies inside the device window. */
export function inMmioWindow(gpa: number, bytes: number): boolean {
  return gpa >= MMIO_WINDOW_BASE && gpa + bytes <= MMIO_WINDOW_END;
}

/** kvm: KVM_IOAPIC_NUM_PINS and IOAPIC_VERSION_ID. */
const IOAPIC_PINS = 24;
const IOAPIC_VERSION = 0x11;
/** Redirection-entry bits (low word): delivery status 12, remote IRR 14, trigger mode 15, mask 16. */
const RTE_DELIVERY_STATUS = 1 << 12;
const RTE_REMOTE_IRR = 1 << 14;
const RTE_LEVEL_TRIGGERED = 1 << 15;
const RTE_MASKED = 1 << 16;

/**
 * KVM's in-kernel IOAPIC as its registers read and write (kvm: ioapic_mmio_read/_write,
 * ioapic_read_indirect/_write_indirect): IOREGSEL at offset 0x00 selects the register IOWIN at 0x10
 * reads and writes (0 APIC ID, 1 version, 2 arbitration ID, 0x10 + 2n/0x11 + 2n the 24 redirection
 * entries); other offsets read as zero. Interrupt delivery is not modelled: an entry's remote IRR and
 * delivery status stay as they were (read-only to the guest), so unmasking never injects anything.
 */
export class InKernelIoapic {
  ioregsel = 0;
  id = 0;
  /** Redirection entries, low and high words; masked at reset (kvm: kvm_ioapic_reset). */
  readonly redirectionLo: Uint32Array = new Uint32Array(IOAPIC_PINS).fill(RTE_MASKED);
  readonly redirectionHi: Uint32Array = new Uint32Array(IOAPIC_PINS);

  static claims(gpa: number): boolean {
    return gpa >= IOAPIC_BASE && gpa < IOAPIC_BASE + IOAPIC_LENGTH;
  }

  /**
   * A load of `bytes` at `gpa`: the 32-bit register, its low bytes below 4 and zero-extended for 8
   * (kvm: ioapic_mmio_read copies `len` bytes of a u32 result).
   */
  read(gpa: number, bytes: number): number {
    const offset = gpa & 0xff;
    const value = offset === 0x00 ? this.ioregsel : offset === 0x10 ? this.#readIndirect() : 0;
    return bytes >= 4 ? value : value & ((1 << (bytes * 8)) - 1);
  }

  /**
   * A store of `bytes` at `gpa` with value bits 31:0 `value` (kvm: ioapic_mmio_write takes the
   * low `len` bytes, the low 4 of an 8-byte store).
   */
  write(gpa: number, bytes: number, value: number): void {
    const data = bytes >= 4 ? value >>> 0 : value & ((1 << (bytes * 8)) - 1);
    const offset = gpa & 0xff;
    if (offset === 0x00) this.ioregsel = data & 0xff;
    else if (offset === 0x10) this.#writeIndirect(data);
  }

  #readIndirect(): number {
    const sel = this.ioregsel;
    if (sel === 1) return (((IOAPIC_PINS - 1) & 0xff) << 16) | IOAPIC_VERSION;
    if (sel === 0 || sel === 2) return ((this.id & 0xf) << 24) >>> 0;
    const index = (sel - 0x10) >> 1;
    if (index < 0 || index >= IOAPIC_PINS) return 0xffffffff;
    return (sel & 1) !== 0 ? this.redirectionHi[index]! : this.redirectionLo[index]!;
  }

  #writeIndirect(value: number): void {
    const sel = this.ioregsel;
    if (sel === 0) {
      this.id = (value >>> 24) & 0xf;
      return;
    }
    if (sel === 1 || sel === 2) return;
    const index = (sel - 0x10) >> 1;
    if (index < 0 || index >= IOAPIC_PINS) return;
    if ((sel & 1) !== 0) {
      this.redirectionHi[index] = value;
      return;
    }
    const old = this.redirectionLo[index]!;
    const readOnly = old & (RTE_DELIVERY_STATUS | RTE_REMOTE_IRR);
    let lo = (value & ~(RTE_DELIVERY_STATUS | RTE_REMOTE_IRR)) | readOnly;
    // kvm: an edge-triggered entry has its remote IRR cleared (an implicit EOI).
    if ((lo & RTE_LEVEL_TRIGGERED) === 0) lo &= ~RTE_REMOTE_IRR;
    this.redirectionLo[index] = lo >>> 0;
  }
}

/** The MMIO side of the user-space VMM (reached through KVM_EXIT_MMIO). */
export class UserspaceMmio {
  /** The register page at VMM_REGISTERS_BASE. */
  readonly registers: Uint8Array = new Uint8Array(4096);

  /** A load of `bytes` (1, 2, 4 or 8) at `gpa`: bits 31:0 and 63:32 into `out`. */
  read(gpa: number, bytes: number, out: Uint32Array): void {
    out[0] = 0;
    out[1] = 0;
    const offset = gpa - VMM_REGISTERS_BASE;
    if (offset < 0 || offset + bytes > 4096) return;
    const r = this.registers;
    let lo = 0;
    for (let i = Math.min(bytes, 4) - 1; i >= 0; i--) lo = (lo << 8) | r[offset + i]!;
    out[0] = lo >>> 0;
    if (bytes === 8)
      out[1] =
        (r[offset + 4]! | (r[offset + 5]! << 8) | (r[offset + 6]! << 16) | (r[offset + 7]! << 24)) >>> 0;
  }

  /** A store of `bytes` at `gpa` with value bits 31:0 `lo` and 63:32 `hi`. */
  write(gpa: number, bytes: number, lo: number, hi: number): void {
    const offset = gpa - VMM_REGISTERS_BASE;
    if (offset < 0 || offset + bytes > 4096) return;
    const r = this.registers;
    for (let i = 0; i < bytes; i++) r[offset + i] = (i < 4 ? lo >>> (8 * i) : hi >>> (8 * (i - 4))) & 0xff;
  }
}

/**
 * A KVM instance's MMIO buses and what lies behind them (kvm: kvm->buses[KVM_MMIO_BUS] and
 * [KVM_FAST_MMIO_BUS], the ioeventfds on them, and KVM_EXIT_MMIO for the rest): the IOAPIC and the
 * doorbell's ioeventfd in the kernel, the VMM's device in user space.
 */
export class MmioDevices {
  readonly ioapic = new InKernelIoapic();
  readonly vmm = new UserspaceMmio();
  /**
   * Signals of the doorbell's eventfd, whichever bus delivered them (the VMM's I/O thread consumes
   * them; the guest cannot read them back).
   */
  doorbellSignals = 0;

  /**
   * kvm: kvm_io_bus_write(KVM_FAST_MMIO_BUS, gpa, 0, NULL) — true when a length-0 ioeventfd took the
   * address (the doorbell), which is then signalled.
   */
  fastWrite(gpa: number): boolean {
    if (gpa !== DOORBELL_ADDRESS) return false;
    this.doorbellSignals++;
    return true;
  }

  /**
   * kvm: vcpu_mmio_read — a load of `bytes` at `gpa` into `out` (bits 31:0, 63:32). Returns true when
   * a device on KVM_MMIO_BUS completed it (the IOAPIC; ioeventfds have no read), false when it went
   * to the VMM (KVM_EXIT_MMIO).
   */
  read(gpa: number, bytes: number, out: Uint32Array): boolean {
    if (InKernelIoapic.claims(gpa)) {
      out[0] = this.ioapic.read(gpa, bytes);
      out[1] = 0;
      return true;
    }
    this.vmm.read(gpa, bytes, out);
    return false;
  }

  /**
   * kvm: vcpu_mmio_write — a store of `bytes` at `gpa` (value bits 31:0 `lo`, 63:32 `hi`). Returns
   * true when KVM_MMIO_BUS completed it (the IOAPIC, or the doorbell's ioeventfd, which matches any
   * length), false when it went to the VMM (KVM_EXIT_MMIO).
   */
  write(gpa: number, bytes: number, lo: number, hi: number): boolean {
    if (InKernelIoapic.claims(gpa)) {
      this.ioapic.write(gpa, bytes, lo);
      return true;
    }
    if (gpa === DOORBELL_ADDRESS) {
      this.doorbellSignals++;
      return true;
    }
    this.vmm.write(gpa, bytes, lo, hi);
    return false;
  }
}
