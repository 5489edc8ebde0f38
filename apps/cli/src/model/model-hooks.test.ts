import { describe, expect, it } from "vitest";
import { useBundledPackages } from "./bundled-packages";
import { initialize, resolve } from "./model-hooks";

describe("model-hooks", () => {
  it("resolves the bundled packages to their copies and passes everything else on", async () => {
    initialize({ map: { "@nestvisor/mmu": "file:///opt/nestvisor/dist/bundled/mmu.js" } });
    const next = (specifier: string) => ({ url: `next:${specifier}` });
    expect(resolve("@nestvisor/mmu", {}, next)).toEqual({
      url: "file:///opt/nestvisor/dist/bundled/mmu.js",
      format: "module",
      shortCircuit: true,
    });
    expect(await resolve("@nestvisor/mmu/extra", {}, next)).toEqual({ url: "next:@nestvisor/mmu/extra" });
    expect(await resolve("yaml", {}, next)).toEqual({ url: "next:yaml" });
  });

  it("is registered only from the built binary", () => {
    expect(useBundledPackages("file:///repo/apps/cli/src/model/bundled-packages.ts")).toBe(false);
    expect(useBundledPackages("file:///nowhere/dist/chunk-ABC.js")).toBe(false);
  });
});
