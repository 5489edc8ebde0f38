import type { Vmcs12Reader } from "../entry-check-context";
import type { Vmcs12 } from "../vmcs12";

/**
 * `vmcs12` behind a plain `Vmcs12Reader` object, so a test drives the checker's generic path (any
 * reader) instead of its `Vmcs12` fast path, over the same fields.
 */
export function asGenericReader(vmcs12: Vmcs12): Vmcs12Reader {
  return {
    read: (encoding) => vmcs12.read(encoding),
    get hi() {
      return vmcs12.hi;
    },
  };
}
