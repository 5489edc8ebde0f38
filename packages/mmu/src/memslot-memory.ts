import { PAGE_SIZE, type PhysicalMemory, readWords, writeWords } from "@nestvisor/x86-arch";
import type { Memslots } from "./memslots";

/** Guest-physical addresses are below 2^52 (SDM 4.1.4). */
const GPA_LIMIT = 2 ** 52;

/**
 * A guest's physical memory as KVM's software walks see it (kvm: kvm_vcpu_gfn_to_hva_prot then
 * __get_user / __try_cmpxchg_user in FNAME(walk_addr_generic)): each guest-physical address goes
 * through the memslots to host memory. This is how the shadow MMU reads the tables it shadows —
 * a guest's own page tables, or L1's EPT12, which live in L1's memory.
 *
 * Two rules follow KVM rather than a processor:
 * - A read of a gfn no memslot holds returns zeros. KVM's walk fails there (`goto error` with
 *   error code 0); a walker reading a zero entry fails the same way, as "not present".
 * - A write to a read-only slot, or to a gfn no slot holds, is dropped (kvm: "If the slot is
 *   read-only, simply do not process the accessed and dirty bits"). The walkers write only
 *   accessed/dirty flags.
 *
 * Accesses that cross a page boundary are split byte by byte, since the next page may live
 * elsewhere in host memory.
 */
export class MemslotMemory implements PhysicalMemory {
  readonly size = GPA_LIMIT;
  readonly host: PhysicalMemory;
  readonly memslots: Memslots;

  constructor(host: PhysicalMemory, memslots: Memslots) {
    this.host = host;
    this.memslots = memslots;
  }

  /** Host-physical address of `gpa`, or -1 when no slot holds it. */
  translate(gpa: number): number {
    if (!(gpa >= 0 && gpa < GPA_LIMIT)) {
      throw new RangeError(`guest-physical address 0x${gpa.toString(16)} is outside [0, 2^52)`);
    }
    const offset = gpa % PAGE_SIZE;
    const gfn = (gpa - offset) / PAGE_SIZE;
    const slot = this.memslots.lookup(gfn);
    return slot < 0 ? -1 : this.memslots.hostAddressAt(slot, gfn) + offset;
  }

  /** Host-physical address a write to `gpa` may go to, or -1 (no slot, or a read-only slot). */
  #writable(gpa: number): number {
    if (!(gpa >= 0 && gpa < GPA_LIMIT)) {
      throw new RangeError(`guest-physical address 0x${gpa.toString(16)} is outside [0, 2^52)`);
    }
    const offset = gpa % PAGE_SIZE;
    const gfn = (gpa - offset) / PAGE_SIZE;
    const memslots = this.memslots;
    const slot = memslots.lookup(gfn);
    if (slot < 0 || memslots.readOnlyAt(slot)) return -1;
    return memslots.hostAddressAt(slot, gfn) + offset;
  }

  read8(gpa: number): number {
    const hpa = this.translate(gpa);
    return hpa < 0 ? 0 : this.host.read8(hpa);
  }

  read16(gpa: number): number {
    if (gpa % PAGE_SIZE > PAGE_SIZE - 2) return this.read8(gpa) | (this.read8(gpa + 1) << 8);
    const hpa = this.translate(gpa);
    return hpa < 0 ? 0 : this.host.read16(hpa);
  }

  read32(gpa: number): number {
    if (gpa % PAGE_SIZE > PAGE_SIZE - 4) {
      return (this.read16(gpa) | (this.read16(gpa + 2) << 16)) >>> 0;
    }
    const hpa = this.translate(gpa);
    return hpa < 0 ? 0 : this.host.read32(hpa);
  }

  read64(gpa: number): number {
    const lo = this.read32(gpa);
    const hi = this.read32(gpa + 4);
    if (hi >= 0x200000) {
      throw new RangeError(
        `64-bit value at guest-physical 0x${gpa.toString(16)} is 2^53 or more; read it as two halves`,
      );
    }
    return hi * 4294967296 + lo;
  }

  write8(gpa: number, value: number): void {
    const hpa = this.#writable(gpa);
    if (hpa >= 0) this.host.write8(hpa, value);
  }

  write16(gpa: number, value: number): void {
    if (gpa % PAGE_SIZE > PAGE_SIZE - 2) {
      this.write8(gpa, value & 0xff);
      this.write8(gpa + 1, (value >>> 8) & 0xff);
      return;
    }
    const hpa = this.#writable(gpa);
    if (hpa >= 0) this.host.write16(hpa, value);
  }

  write32(gpa: number, value: number): void {
    if (gpa % PAGE_SIZE > PAGE_SIZE - 4) {
      this.write16(gpa, value & 0xffff);
      this.write16(gpa + 2, (value >>> 16) & 0xffff);
      return;
    }
    const hpa = this.#writable(gpa);
    if (hpa >= 0) this.host.write32(hpa, value);
  }

  write64(gpa: number, lo: number, hi: number): void {
    if (gpa % PAGE_SIZE > PAGE_SIZE - 8) {
      this.write32(gpa, lo);
      this.write32(gpa + 4, hi);
      return;
    }
    const hpa = this.#writable(gpa);
    if (hpa >= 0) this.host.write64(hpa, lo, hi);
  }

  /**
   * Bulk `read32` (kvm: a kvm_read_guest of a whole structure, e.g. a vmcs12 page): page by page
   * through the memslots, zeros where no slot holds the page.
   */
  readWords(gpa: number, target: Uint32Array, offset: number, count: number): void {
    let done = 0;
    while (done < count) {
      const at = gpa + done * 4;
      const n = Math.min(count - done, (PAGE_SIZE - (at % PAGE_SIZE)) >>> 2);
      const hpa = this.translate(at);
      if (hpa < 0) target.fill(0, offset + done, offset + done + n);
      else readWords(this.host, hpa, target, offset + done, n);
      done += n;
    }
  }

  /** Bulk `write32`: page by page, dropped where no slot holds the page or the slot is read-only. */
  writeWords(gpa: number, source: Uint32Array, offset: number, count: number): void {
    let done = 0;
    while (done < count) {
      const at = gpa + done * 4;
      const n = Math.min(count - done, (PAGE_SIZE - (at % PAGE_SIZE)) >>> 2);
      const hpa = this.#writable(at);
      if (hpa >= 0) writeWords(this.host, hpa, source, offset + done, n);
      done += n;
    }
  }

  readBytes(gpa: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.read8(gpa + i);
    return out;
  }

  writeBytes(gpa: number, bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.write8(gpa + i, bytes[i]!);
  }
}
