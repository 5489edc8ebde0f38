import { kvmRootCacheWithSize } from "@nestvisor/mmu";
import { describe, expect, it } from "vitest";
import { UsageError } from "../framework/errors";
import { tempFiles } from "../testing/run-cli";
import { importModelModule, loadModelModule, modelFromExports, modelSpecOf } from "./model-module";

const base = { preset: "v5.2", flags: { ept: false } };

describe("modelSpecOf", () => {
  it("takes the default export, else `model`, and calls a function export with the base spec", () => {
    const spec = { name: "a" };
    expect(modelSpecOf({ default: spec }, "m.mjs", base)).toBe(spec);
    expect(modelSpecOf({ model: spec }, "m.mjs", base)).toBe(spec);
    expect(
      modelSpecOf({ default: (b: { preset: string }) => ({ name: `x-${b.preset}` }) }, "m.mjs", base),
    ).toEqual({
      name: "x-v5.2",
    });
  });

  it("says what is wrong with anything that is not a ModelSpec, naming the module", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ other: 1 }, /^--model m\.mjs: the module exports no "default" or "model" \(exports: other\)/],
      [{ default: 42 }, /the model export is a number, not a ModelSpec \{ name\?, preset\?/],
      [{ default: { name: "x", polcies: {} } }, /unknown ModelSpec member polcies/],
      [{ default: { flags: "ept=off" } }, /flags is a string, expected an object of flag: boolean/],
      [{ default: { policies: { rootCache: {} } } }, /policies\.rootCache is not a RootCachePolicy/],
      [{ default: { policies: { reflection: 1 } } }, /policies\.reflection is a number, expected a function/],
      [{ default: { policies: { cache: 1 } } }, /unknown policy cache; ModelPolicies has rootCache/],
      [{ default: () => Promise.resolve({}) }, /returned a Promise/],
      [
        {
          default: () => {
            throw new Error("bad");
          },
        },
        /threw when called with the base ModelSpec: bad/,
      ],
      [
        { default: { name: "kvm-example", createMachine() {}, hooks: {} } },
        /a test-suite ModelFactory \(it has createMachine, hooks\).*nestvisor test --model m\.mjs/,
      ],
      [
        { default: (kit: { mmu: { VcpuMmu: unknown } }) => kit.mmu.VcpuMmu },
        /a function of the test suite's kit \(it reads kit\.mmu\).*nestvisor test --model m\.mjs/,
      ],
    ];
    for (const [exports, message] of cases) {
      const run = () => modelSpecOf(exports, "m.mjs", base);
      expect(run).toThrow(UsageError);
      expect(run).toThrow(message);
    }
  });
});

describe("modelFromExports", () => {
  it("builds the module's model on top of the base spec", () => {
    const model = modelFromExports(
      { default: { name: "rc8", policies: { rootCache: kvmRootCacheWithSize(8) } } },
      "m.mjs",
      base,
    );
    expect(model.name).toBe("rc8");
    expect(model.preset).toBe("v5.2");
    expect(model.config.ept).toBe(false);
    expect(model.policies.rootCache?.prevRoots).toBe(8);
  });

  it("turns an unknown flag or preset in the module into a usage error naming it", () => {
    expect(() => modelFromExports({ default: { flags: { nope: true } } }, "m.mjs", base)).toThrow(
      /^--model m\.mjs: unknown hypervisor flag "nope"/,
    );
    expect(() => modelFromExports({ default: { preset: "v9" } }, "m.mjs", base)).toThrow(
      /^--model m\.mjs: unknown kernel preset "v9"/,
    );
  });
});

describe("importModelModule", () => {
  it("loads a module relative to the working directory, and names it in every failure", async () => {
    const dir = tempFiles({
      "ok.mjs": 'export default { name: "ok", flags: { shadowVmcs: false } };',
      "throws.mjs": 'throw new Error("boom");',
      "syntax.mjs": "export default {{",
    });
    const model = await loadModelModule("ok.mjs", dir, {});
    expect(model.name).toBe("ok");
    expect(model.config.shadowVmcs).toBe(false);
    await expect(importModelModule("missing.mjs", dir)).rejects.toThrow("--model missing.mjs: no such file");
    await expect(importModelModule(".", dir)).rejects.toThrow("is a directory");
    await expect(importModelModule("throws.mjs", dir)).rejects.toThrow(
      "--model throws.mjs: the module failed to load: boom",
    );
    await expect(importModelModule("syntax.mjs", dir)).rejects.toThrow(
      /^--model syntax\.mjs: the module failed to load/,
    );
  });
});
