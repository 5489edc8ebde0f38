import { resolveFlags } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { DEFAULT_PARTS } from "../model-parts";
import { entryCase, FAIL_CONTROLS, FAIL_GUEST, FAIL_HOST, runEntryCase } from "./entry-check-case";
import { VmxWorld } from "./vmx-world";

const world = () => new VmxWorld(DEFAULT_PARTS, resolveFlags("v6.12", {}));

describe("runEntryCase", () => {
  it("accepts what L1 must see", () => {
    expect(
      runEntryCase(
        world(),
        entryCase("baseline", "enters", () => undefined),
      ),
    ).toBeNull();
    expect(
      runEntryCase(
        world(),
        entryCase("vpid 0", FAIL_CONTROLS, (s) => s.secondary(1 << 5).set("VIRTUAL_PROCESSOR_ID", 0)),
      ),
    ).toBeNull();
    expect(
      runEntryCase(
        world(),
        entryCase("cs 0", FAIL_HOST, (s) => s.set("HOST_CS_SELECTOR", 0)),
      ),
    ).toBeNull();
    expect(
      runEntryCase(
        world(),
        entryCase("rflags", FAIL_GUEST, (s) => s.set("GUEST_RFLAGS", 0)),
      ),
    ).toBeNull();
    expect(
      runEntryCase(
        world(),
        entryCase("passes", "passes", (s) => s.set("GUEST_RFLAGS", 0)),
      ),
    ).toBeNull();
    expect(
      runEntryCase(
        world(),
        entryCase("skipped", FAIL_HOST, () => "skip"),
      ),
    ).toBeNull();
  });

  it("says what L1 saw, what it should have, and which rule fired", () => {
    const failure = runEntryCase(
      world(),
      entryCase("wrong", "enters", (s) => s.set("HOST_CS_SELECTOR", 0)),
    );
    expect(failure).toMatch(
      /^L1 saw VMfailValid\(8\), expected the guest to run \[host\.[a-z.-]+ → VMfailValid\(8\): /,
    );
    expect(
      runEntryCase(
        world(),
        entryCase("wrong", FAIL_HOST, () => undefined),
      ),
    ).toBe("L1 saw the guest running, expected VMfailValid(8)");
  });
});
