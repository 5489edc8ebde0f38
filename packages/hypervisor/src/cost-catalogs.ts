import { MMU_EVENTS, type MmuEventName } from "@nestvisor/mmu";
import { type EventCatalogInfo, VMX_EVENTS, type VmxEventName } from "@nestvisor/vmx";
import { HYPERVISOR_EVENTS, type HypervisorEventName } from "./hypervisor-events";

/**
 * The event catalogs a cost profile prices (DESIGN.md §5): every primitive the model counts, from
 * the vmx (0x100…), mmu (0x200…) and hypervisor (0x300…) layers. A profile must give a cost for
 * every name of every catalog listed here.
 */
export const COST_CATALOGS: readonly EventCatalogInfo[] = Object.freeze([
  VMX_EVENTS,
  MMU_EVENTS,
  HYPERVISOR_EVENTS,
]);

/** The name of any event a cost profile prices. */
export type CostEventName = VmxEventName | MmuEventName | HypervisorEventName;

/** Every priced event name, in id order (vmx, then mmu, then hypervisor). */
export const COST_EVENT_NAMES: readonly CostEventName[] = Object.freeze(
  COST_CATALOGS.flatMap((catalog) => catalog.names as readonly CostEventName[]),
);

const ID_BY_NAME: ReadonlyMap<string, number> = new Map(
  COST_CATALOGS.flatMap((catalog) => catalog.names.map((name, i) => [name, catalog.base + i] as const)),
);

/** The id of a priced event name, or undefined for a name no catalog defines. */
export function costEventId(name: string): number | undefined {
  return ID_BY_NAME.get(name);
}

/** True when `name` is an event a profile must price. */
export function isCostEventName(name: string): name is CostEventName {
  return ID_BY_NAME.has(name);
}
