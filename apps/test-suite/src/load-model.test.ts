import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { resolveFlags } from "@nestvisor/hypervisor";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import { loadModel, MODEL_KIT, ModelLoadError, moduleArgument, resolveModelExport } from "./load-model";
import type { ModelModuleArgument } from "./model";

const EXAMPLES = resolve(import.meta.dirname, "../../../examples/models");

function moduleFile(source: string): string {
  const dir = mkdtempSync(join(tmpdir(), "nestvisor-model-"));
  const path = join(dir, "model.mjs");
  writeFileSync(path, source);
  return path;
}

describe("loadModel", () => {
  it("loads the example models: functions of the kit returning a factory", async () => {
    for (const [file, name] of [
      ["kvm.mjs", "kvm-example"],
      ["broken-root-cache.mjs", "broken-root-cache"],
      ["forgetful-rare-sync.mjs", "forgetful-rare-sync"],
    ] as const) {
      const model = await loadModel(join(EXAMPLES, file));
      expect(model.name).toBe(name);
      expect(typeof model.createMachine).toBe("function");
    }
  });

  it("accepts a factory object exported as `model`, relative to cwd", async () => {
    const path = moduleFile(
      "export const model = { name: 'plain', createMachine() { throw new Error('unused'); } };",
    );
    const model = await loadModel("model.mjs", resolve(path, ".."));
    expect(model.name).toBe("plain");
  });

  it("explains what is wrong with a module", async () => {
    await expect(loadModel("/no/such/model.mjs")).rejects.toThrow(/no such file/);
    const dir = resolve(moduleFile("export default 1;"), "..");
    await expect(loadModel(dir)).rejects.toThrow(
      new ModelLoadError(`--model ${dir}: is a directory, not a module file`),
    );
    await expect(loadModel(".", dir)).rejects.toThrow(/^--model \.: is a directory, not a module file$/);
    await expect(loadModel(moduleFile("export const other = 1;"))).rejects.toThrow(
      /exports no "default", "model" or "createModel" \(exports: other\)/,
    );
    await expect(loadModel(moduleFile("export default { name: 'x', hooks: {} };"))).rejects.toThrow(
      /neither|nor a ModelSpec \(unknown member hooks; a ModelSpec has name, preset, flags, innerFlags, profile, policies\)/,
    );
    await expect(loadModel(moduleFile("export default 42;"))).rejects.toThrow(ModelLoadError);
    await expect(
      loadModel(
        moduleFile("export default () => ({ name: 'x', createMachine() {}, hooks: { walker() {} } });"),
      ),
    ).rejects.toThrow(/unknown hook "walker"/);
    await expect(loadModel(moduleFile("throw new Error('at load');"))).rejects.toThrow(
      /failed to load: at load/,
    );
  });

  it("passes the kit (the packages and the default model), which is also the base spec", async () => {
    const seen: ModelModuleArgument[] = [];
    const model = await resolveModelExport(
      (argument: ModelModuleArgument) => {
        seen.push(argument);
        return { ...argument.defaultModel, name: "derived" };
      },
      "test",
      { preset: "v5.3", flags: { shadowVmcs: false } },
    );
    const [argument] = seen;
    for (const key of ["x86", "vmx", "mmu", "hypervisor", "defaultModel"] as const)
      expect(argument![key]).toBe(MODEL_KIT[key]);
    expect(argument!.preset).toBe("v5.3");
    expect(argument!.flags).toEqual({ shadowVmcs: false });
    expect(moduleArgument()).toEqual(MODEL_KIT);
    expect(MODEL_KIT.defaultModel).toBe(KVM_MODEL);
    expect(typeof MODEL_KIT.mmu.VcpuMmu).toBe("function");
    expect(model.name).toBe("derived");
    expect(model.baseline).toBeUndefined();
  });
});

describe("loadModel with a hypervisor ModelSpec module (the nestvisor --model format)", () => {
  const ROOT = resolve(EXAMPLES, "..");

  it("loads the worked examples: their policies, and the base spec under their own", async () => {
    const evmcs = await loadModel(join(ROOT, "enlightened-vmcs/model.mjs"), ROOT, { preset: "v5.3" });
    expect(evmcs.name).toBe("kvm-evmcs");
    expect(typeof evmcs.policies?.vmcsAccess).toBe("function");
    expect(typeof evmcs.policies?.nestedSync).toBe("function");
    expect(evmcs.baseline?.preset).toBe("v5.3");
    expect(evmcs.baseline?.config).toEqual(resolveFlags("v5.3"));
    expect(evmcs.description).toMatch(
      /^hypervisor model kvm-evmcs from --model .*model\.mjs \(preset v5\.3, policies: nestedSync, vmcsAccess\)$/,
    );
    const cache = await loadModel("root-cache-8/model.mjs", ROOT, { flags: { shadowVmcs: false } });
    expect(cache.policies?.rootCache?.prevRoots).toBe(8);
    expect(cache.baseline?.config.shadowVmcs).toBe(false);
    const broken = await loadModel(join(EXAMPLES, "broken-root-cache-policy.mjs"));
    expect(broken.name).toBe("broken-root-cache-policy");
    expect(broken.policies?.rootCache?.name).toBe("role-blind");
  });

  it("takes a ModelSpec object, or a function of the base spec; the spec's preset and flags win", async () => {
    const plain = await loadModel(
      moduleFile("export const model = { preset: 'v5.2', flags: { shadowVmcs: false } };"),
      "/",
      {
        preset: "v6.12",
        flags: { shadowVmcs: true, controlsShadow: false },
      },
    );
    expect(plain.name).toBe("kvm-v5.2");
    expect(plain.baseline?.config).toEqual(
      resolveFlags("v5.2", { shadowVmcs: false, controlsShadow: false }),
    );
    const fn = await loadModel(
      moduleFile(
        "export default (base) => ({ ...base, name: 'on-' + base.preset, innerFlags: { shadowVmcs: !base.flags.shadowVmcs } });",
      ),
      "/",
      { preset: "none", flags: { shadowVmcs: true } },
    );
    expect(fn.name).toBe("on-none");
    expect(fn.baseline).toEqual({ preset: "none", config: resolveFlags("none", { shadowVmcs: true }) });
    const asyncFn = await loadModel(moduleFile("export default async () => ({ name: 'later' });"));
    expect(asyncFn.name).toBe("later");
    expect(asyncFn.baseline?.preset).toBe("v6.12");
  });

  it("explains what is wrong with a ModelSpec", async () => {
    await expect(loadModel(moduleFile("export default { flags: { noSuchFlag: true } };"))).rejects.toThrow(
      /--model .*model\.mjs: unknown hypervisor flag "noSuchFlag"/,
    );
    await expect(loadModel(moduleFile("export default { preset: 'v9.9' };"))).rejects.toThrow(
      /unknown kernel preset "v9\.9"/,
    );
    await expect(loadModel(moduleFile("export default { policies: { rootcache: {} } };"))).rejects.toThrow(
      /unknown policy "rootcache"; policies are rootCache, nestedSync, reflection, vmcsAccess, unsyncShadowPages/,
    );
    await expect(loadModel(moduleFile("export default { policies: { reflection: true } };"))).rejects.toThrow(
      /policy "reflection" is not a function/,
    );
    await expect(
      loadModel(moduleFile("export default { policies: { rootCache: { name: 'x' } } };")),
    ).rejects.toThrow(/policy "rootCache" is not a RootCachePolicy/);
    await expect(loadModel(moduleFile("export default { flags: 3 };"))).rejects.toThrow(
      /the ModelSpec's flags is not an object/,
    );
  });
});
