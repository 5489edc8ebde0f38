import { CountingMeter } from "@nestvisor/vmx";
import { DenseMemory, gpa } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { HostPageAllocator } from "./host-page-allocator";
import { Memslots } from "./memslots";
import { MMU_EVENTS } from "./mmu-events";
import { PAGE_ROLE } from "./page-role";
import { NO_SHADOW_PAGE, type RootBackend } from "./root-backend";
import { ShadowPageStore } from "./shadow-page-store";
import { TdpMmu } from "./tdp-mmu";
import { TdpRootBackend } from "./tdp-root-backend";

const TDP_ROOT = 0x00003784;

function setup() {
  const memory = new DenseMemory(64 * 4096);
  const allocator = new HostPageAllocator(memory, { base: 0, pages: 64, zeroed: true });
  const meter = new CountingMeter([MMU_EVENTS]);
  const memslots = new Memslots();
  const store = new ShadowPageStore({ allocator, meter, memslots });
  const tdp = new TdpMmu({ store, memslots });
  const backend: RootBackend = new TdpRootBackend(tdp);
  return { memslots, tdp, backend, meter };
}

describe("TdpRootBackend", () => {
  it("serves direct roots from the TDP MMU and reports their role words", () => {
    const { backend, tdp, meter } = setup();
    const root = backend.allocDirectRoot(TDP_ROOT);
    expect(backend.allocDirectRoot(TDP_ROOT)).toBe(root);
    expect(backend.rootRoleWord(root)).toBe(TDP_ROOT);
    expect(backend.isObsoleteRoot(root)).toBe(false);
    backend.putRoot(root);
    backend.putRoot(root);
    expect(tdp.rootRefCount(root)).toBe(1); // the TDP MMU's own reference
    expect(meter.byName("ROOT_DESTROY")).toBe(0);
  });

  it("refuses shadow roots with a message naming the shadow MMU", () => {
    const { backend } = setup();
    expect(() => backend.allocShadowRoot(0x00003704, 0x1000)).toThrow(/shadow MMU/);
  });

  it("reports an invalidated root as obsolete with the invalid bit in its role word, and unknown pages as gone", () => {
    const { backend, memslots, tdp } = setup();
    const slot = memslots.add({ baseGfn: 0, npages: 8, hostBase: 0x100_0000 });
    const root = backend.allocDirectRoot(TDP_ROOT);
    tdp.map(root, gpa(0x1000), false);
    memslots.delete(slot);
    expect(backend.isObsoleteRoot(root)).toBe(true);
    expect(backend.rootRoleWord(root)).toBe((TDP_ROOT | PAGE_ROLE.INVALID) >>> 0);
    backend.putRoot(root);
    expect(backend.rootRoleWord(root)).toBe(NO_SHADOW_PAGE);
    expect(backend.isObsoleteRoot(root)).toBe(true);
  });
});
