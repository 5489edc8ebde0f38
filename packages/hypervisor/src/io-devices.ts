/**
 * The port-I/O devices a KVM instance completes an IN/OUT with: KVM's in-kernel PIC, which claims
 * only its command/data ports and the ELCR pair (kvm: kvm_pic_init registers 0x20/0x21, 0xa0/0xa1
 * and 0x4d0/0x4d1 on KVM_PIO_BUS), and the user-space device model for everything else (QEMU: the
 * ACPI PM timer, and all ones from an unassigned port). Values are guest-visible, so they depend
 * only on the accesses, never on simulated cycles: the PM timer advances a fixed 3 ticks per read
 * (documented model choice; a real one follows the 3.579545 MHz clock, which would make runs under
 * two flag settings differ in what the guest reads).
 */

/** Ports of KVM's in-kernel PIC (kvm: picdev_* on the PIO bus). */
export function inKernelPort(port: number): boolean {
  return port === 0x20 || port === 0x21 || port === 0xa0 || port === 0xa1 || port === 0x4d0 || port === 0x4d1;
}

/** The in-kernel PIC's state a guest can read back: the two edge/level control registers. */
export class InKernelPic {
  readonly elcr: Uint8Array = new Uint8Array(2);
  readonly imr: Uint8Array = new Uint8Array(2);

  /** kvm: picdev_read (byte accesses; wider ones read as all ones). */
  read(port: number, bytes: number): number {
    if (bytes !== 1) return 0xffffffff >>> (32 - bytes * 8);
    if (port === 0x4d0 || port === 0x4d1) return this.elcr[port - 0x4d0]!;
    return this.imr[port >= 0xa0 ? 1 : 0]!;
  }

  /** kvm: picdev_write (byte accesses only; ELCR masks per kvm: elcr_mask 0xf8 master, 0xde slave). */
  write(port: number, bytes: number, value: number): void {
    if (bytes !== 1) return;
    if (port === 0x4d0) this.elcr[0] = value & 0xf8;
    else if (port === 0x4d1) this.elcr[1] = value & 0xde;
    else if (port === 0x21 || port === 0xa1) this.imr[port === 0xa1 ? 1 : 0] = value & 0xff;
  }
}

/** ACPI PM timer port of QEMU's PIIX4 PM device at base 0xb000. */
export const PM_TIMER_PORT = 0xb008;

/** The user-space VMM's devices (QEMU), reached through KVM_EXIT_IO. */
export class UserspaceDevices {
  pmTimer = 0;
  /** Bytes OUT to unassigned ports (ignored by QEMU; kept for the state snapshot). */
  lastOut = 0;

  read(port: number, bytes: number): number {
    if (port === PM_TIMER_PORT) {
      this.pmTimer = (this.pmTimer + 3) & 0xffffff;
      return this.pmTimer;
    }
    return 0xffffffff >>> (32 - bytes * 8);
  }

  write(_port: number, bytes: number, value: number): void {
    this.lastOut = value & (0xffffffff >>> (32 - bytes * 8));
  }
}
