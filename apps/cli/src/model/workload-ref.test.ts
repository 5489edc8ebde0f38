import { describe, expect, it } from "vitest";
import { tempFiles } from "../testing/run-cli";
import { buildProgram, parseParams, resolveWorkload, takesIterations } from "./workload-ref";

describe("workload references", () => {
  it("resolves built-ins with parameters, level and iterations", () => {
    const ref = resolveWorkload("touch_memory", "/");
    expect(takesIterations(ref)).toBe(false);
    const program = buildProgram(ref, { level: 1, iterations: 5, params: { pages: "8" } });
    expect(program.setup.level).toBe(1);
    expect(() => buildProgram(ref, { params: { page: "8" } })).toThrow(
      /unknown parameter "page" \(did you mean "pages"\?\)/,
    );
    expect(() => buildProgram(resolveWorkload("cpuid", "/"), { iterations: 0 })).toThrow(
      /parameters\.iterations/,
    );
  });

  it("keeps --param iterations and pages within what a CLI run finishes", () => {
    const cpuid = resolveWorkload("cpuid", "/");
    expect(buildProgram(cpuid, { params: { iterations: "100000" } }).name).toBe("cpuid");
    expect(() => buildProgram(cpuid, { params: { iterations: "4294967295" } })).toThrow(
      /--param iterations=4294967295: at most 100000 iterations/,
    );
    // touch_memory's page tables must fit KVM's 8-MiB pool at every level: 512 MiB at most.
    expect(() =>
      buildProgram(resolveWorkload("touch_memory", "/"), { params: { pages: "1048576" } }),
    ).toThrow(/pages/);
  });

  it("suggests a built-in for a misspelt name", () => {
    expect(() => resolveWorkload("cpuidd", "/")).toThrow(
      /unknown workload "cpuidd" \(did you mean "cpuid"\?\)/,
    );
  });

  it("loads workload files and reports their first problem with file:line:column", () => {
    const dir = tempFiles({
      "ok.yaml":
        "name: loop\nsetup: { level: 1 }\nsteps:\n  - loop: { count: 3, steps: [iteration: x, cpuid: 0] }\n",
      "bad.json": '{ "name": "x", "steps": [ { "cpuid": "abc" } ] }',
      "broken.json": '{ "name": ',
    });
    const ok = resolveWorkload("ok.yaml", dir);
    expect(ok.kind).toBe("file");
    expect(buildProgram(ok, { level: 2 }).setup.level).toBe(2);
    expect(() => buildProgram(ok, { iterations: 3 })).toThrow(/--iterations applies to built-in workloads/);
    expect(() => resolveWorkload("bad.json", dir)).toThrow(/bad\.json:1:\d+: steps\[0\]\.cpuid/);
    expect(() => resolveWorkload("broken.json", dir)).toThrow(/broken\.json:1:\d+: YAML/);
    expect(() => resolveWorkload("missing.yaml", dir)).toThrow(/missing\.yaml: no such file/);
  });

  it("parses --param items", () => {
    expect(parseParams(["pages=8", " write = false "])).toEqual({ pages: "8", write: "false" });
    expect(() => parseParams(["pages"])).toThrow(/is not name=value/);
  });
});
