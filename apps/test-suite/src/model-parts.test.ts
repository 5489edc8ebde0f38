import { DenseMemory, EptWalker, PageWalker } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import type { ModelFactory } from "./model";
import { DEFAULT_PARTS, modelParts } from "./model-parts";

describe("modelParts", () => {
  it("gives the packages' components for a model without hooks", () => {
    const parts = modelParts({ name: "bare", createMachine: KVM_MODEL.createMachine });
    const memory = new DenseMemory(4096);
    expect(parts.pageWalker(memory, {})).toBeInstanceOf(PageWalker);
    expect(parts.eptWalker(memory, {})).toBeInstanceOf(EptWalker);
    expect(Object.keys(parts).sort()).toEqual(Object.keys(DEFAULT_PARTS).sort());
  });

  it("uses a model's hook over the default", () => {
    class CountingWalker extends PageWalker {}
    let made = 0;
    const model: ModelFactory = {
      name: "m",
      createMachine: KVM_MODEL.createMachine,
      hooks: {
        pageWalker: (memory) => {
          made++;
          return new CountingWalker(memory);
        },
      },
    };
    const walker = modelParts(model).pageWalker(new DenseMemory(4096), {});
    expect(walker).toBeInstanceOf(CountingWalker);
    expect(made).toBe(1);
  });

  it("rejects an unknown hook or one that is not a function, naming it", () => {
    const unknown = {
      name: "m",
      createMachine: KVM_MODEL.createMachine,
      hooks: { pageWalkr: () => null },
    } as unknown as ModelFactory;
    expect(() => modelParts(unknown)).toThrow(/unknown hook "pageWalkr"/);
    const notFn = {
      name: "m",
      createMachine: KVM_MODEL.createMachine,
      hooks: { pageWalker: 3 },
    } as unknown as ModelFactory;
    expect(() => modelParts(notFn)).toThrow(/"pageWalker" is not a function/);
  });
});
