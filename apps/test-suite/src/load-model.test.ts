import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { KVM_MODEL } from "./kvm-model";
import { loadModel, MODEL_KIT, ModelLoadError, resolveModelExport } from "./load-model";

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
    await expect(loadModel(moduleFile("export const other = 1;"))).rejects.toThrow(
      /exports no "default", "model" or "createModel" \(exports: other\)/,
    );
    await expect(loadModel(moduleFile("export default { name: 'x' };"))).rejects.toThrow(ModelLoadError);
    await expect(
      loadModel(
        moduleFile("export default () => ({ name: 'x', createMachine() {}, hooks: { walker() {} } });"),
      ),
    ).rejects.toThrow(/unknown hook "walker"/);
    await expect(loadModel(moduleFile("throw new Error('at load');"))).rejects.toThrow(
      /failed to load: at load/,
    );
  });

  it("passes the kit: the packages and the default model", async () => {
    const seen: unknown[] = [];
    const model = await resolveModelExport((kit: typeof MODEL_KIT) => {
      seen.push(kit);
      return { ...kit.defaultModel, name: "derived" };
    }, "test");
    expect(seen[0]).toBe(MODEL_KIT);
    expect(MODEL_KIT.defaultModel).toBe(KVM_MODEL);
    expect(typeof MODEL_KIT.mmu.VcpuMmu).toBe("function");
    expect(model.name).toBe("derived");
  });
});
