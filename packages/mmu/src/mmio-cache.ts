/**
 * The vCPU's MMIO cache (kvm: vcpu->arch.mmio_gva / mmio_access / mmio_gfn / mmio_gen and the
 * helpers vcpu_cache_mmio_info, vcpu_match_mmio_gva, vcpu_match_mmio_gpa, vcpu_clear_mmio_info in
 * arch/x86/kvm/x86.h): the last page a fault or an MMIO SPTE showed to be MMIO, so that the next
 * MMIO page fault and the emulator's address translation need no walk. An entry is valid only under
 * the memslot generation it was made in.
 */
export class MmioCache {
  /** Guest-virtual page (its address, 4-KiB aligned) of the last MMIO access; 0: none. */
  gva = 0;
  /** ACC rights of that page's guest mapping. */
  access = 0;
  /** Its gfn; 0: none. */
  gfn = 0;
  /** The memslot generation the entry was made in; -1: never. */
  generation = -1;

  /**
   * kvm: vcpu_cache_mmio_info. `gva` is 0 for a TDP fault, and for a shadow nested-EPT fault, whose
   * address is an L2 GPA (`nested`).
   */
  cache(gva: number, gfn: number, access: number, generation: number, nested: boolean): void {
    this.gva = nested ? 0 : gva - (gva % 4096);
    this.access = access;
    this.gfn = gfn;
    this.generation = generation;
  }

  /** kvm: vcpu_match_mmio_gpa. */
  matchGpa(gpa: number, generation: number): boolean {
    return this.generation === generation && this.gfn !== 0 && this.gfn === Math.floor(gpa / 4096);
  }

  /** kvm: vcpu_match_mmio_gva. */
  matchGva(gva: number, generation: number): boolean {
    return this.generation === generation && this.gva !== 0 && this.gva === gva - (gva % 4096);
  }

  /**
   * kvm: vcpu_clear_mmio_info — forgets the guest-virtual page when it is `gva`'s, or whatever it is
   * with `gva` null (MMIO_GVA_ANY); the gfn stays, as in KVM.
   */
  clear(gva: number | null): void {
    if (gva !== null && this.gva !== gva - (gva % 4096)) return;
    this.gva = 0;
  }
}
