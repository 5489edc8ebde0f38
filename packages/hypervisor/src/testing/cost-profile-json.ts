import { COST_EVENT_NAMES } from "../cost-catalogs";

/** A valid cost profile as plain JSON data (every event priced), for tests that break one field at a time. */
export function validCostProfileJson(): Record<string, unknown> & {
  events: Record<string, Record<string, unknown>>;
} {
  const events: Record<string, Record<string, unknown>> = {};
  for (const name of COST_EVENT_NAMES) events[name] = { cycles: 10, assumption: "test value" };
  return {
    name: "test-profile",
    description: "a profile for tests",
    cpu: "none",
    tscGHz: { value: 3, source: "test" },
    events,
  };
}
