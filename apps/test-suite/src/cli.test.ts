import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

/**
 * The built `nestvisor-test-suite` bin, spawned as a user would run it. The package is built first
 * (tsup); the workspace packages it imports resolve to their sources through the
 * `@nestvisor/source` condition with tsx, so the test does not depend on their `dist/` being fresh.
 */
const PACKAGE = resolve(import.meta.dirname, "..");
const BIN = join(PACKAGE, "dist", "cli.js");
const ROOT_EXAMPLES = resolve(PACKAGE, "../../examples");
const EXAMPLES = join(ROOT_EXAMPLES, "models");

function bin(args: string[]) {
  return spawnSync(process.execPath, ["--conditions=@nestvisor/source", "--import", "tsx", BIN, ...args], {
    cwd: PACKAGE,
    encoding: "utf8",
    timeout: 120_000,
  });
}

/** Newest modification time under `dir`, tests excluded. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (!entry.name.endsWith(".test.ts")) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

// Under `pnpm test` turbo builds the package (and the layers below, whose declarations tsup's dts
// step reads) before this runs; a direct `vitest` run rebuilds only when the bin is stale.
beforeAll(() => {
  if (existsSync(BIN) && statSync(BIN).mtimeMs >= newest(join(PACKAGE, "src"))) return;
  const build = spawnSync("pnpm", ["exec", "tsup", "--silent"], {
    cwd: PACKAGE,
    encoding: "utf8",
    timeout: 120_000,
  });
  if (build.status !== 0) throw new Error(`tsup failed:\n${build.stdout}\n${build.stderr}`);
});

describe("nestvisor-test-suite (the built bin)", () => {
  it("is built with its hashbang", () => {
    expect(existsSync(BIN)).toBe(true);
  });

  it("passes a filtered run on the project's model: TAP on stdout, progress on stderr, exit 0", () => {
    const r = bin(["--filter", "^(vmx/conventions|ept/access-rights)$", "--tap"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^TAP version 14\n1\.\.2\n/);
    expect(r.stdout).toContain("ok 1 - vmx/conventions # 6 cases");
    expect(r.stdout).toContain("ok 2 - ept/access-rights # 144 cases");
    expect(r.stderr).toMatch(/\[2\/2\] PASS ept\/access-rights/);
  });

  it("fails on the broken example model with a message pointing at the root cache, exit 1", () => {
    const r = bin(["--model", join(EXAMPLES, "broken-root-cache.mjs"), "--filter", "^mmu/", "--quiet"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL mmu\/root-role-invariant/m);
    expect(r.stdout).toMatch(
      /guest_mode false instead of true\): the root cache handed out a root without comparing its role \(kvm: is_root_usable\)/,
    );
  });

  it("takes a ModelSpec module (the nestvisor --model format): every suite passes on the enlightened VMCS, exit 0", () => {
    const r = bin([
      "--model",
      join(ROOT_EXAMPLES, "enlightened-vmcs/model.mjs"),
      "--preset",
      "v5.3",
      "--quiet",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^nestvisor-test-suite: model kvm-evmcs, preset v5\.3, seed \d+$/m);
    for (const suite of [
      "access",
      "vmx",
      "vmx-checks",
      "shadow-vmcs",
      "ept",
      "mmu",
      "nested",
      "differential",
      "audit",
    ])
      expect(r.stdout).toMatch(new RegExp(`^  ${suite} +\\d+ groups? +\\d+ tests`, "m"));
    expect(r.stdout).toMatch(/^SUMMARY: \d+ tests, 0 unexpected failures, 0 expected failures, 0 skipped$/m);
  }, 120_000);

  it("fails on the broken ModelSpec model: its root-cache policy skips the role check, exit 1", () => {
    const r = bin([
      "--model",
      join(EXAMPLES, "broken-root-cache-policy.mjs"),
      "--filter",
      "^mmu/",
      "--quiet",
    ]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^nestvisor-test-suite: model broken-root-cache-policy, preset v6\.12/m);
    expect(r.stdout).toMatch(/^FAIL mmu\/root-role-invariant/m);
    expect(r.stdout).toMatch(
      /after a nested VM entry without EPT12 .*\(guest_mode false instead of true\): the root cache handed out a root without comparing its role \(kvm: is_root_usable\)/,
    );
  });

  it("reports the DVH model's one deviation: L1 never sees the port-I/O exits it intercepts, exit 1", () => {
    const r = bin([
      "--model",
      join(ROOT_EXAMPLES, "dvh-virtual-passthrough/model.mjs"),
      "--filter",
      "^nested/",
      "--quiet",
    ]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^PASS nested\/vmcs12-after-exit/m);
    expect(r.stdout).toMatch(/^FAIL nested\/machine-exits \(13 tests, 3 unexpected failures\)$/m);
    expect(r.stdout).toContain(
      "FAIL: IN EAX from port 0x1234: L1 never saw the exit (vmcs12 untouched: VM_EXIT_REASON 0, GUEST_RIP 0x100000), expected exit 30",
    );
  });

  it("exits 2 on a usage error", () => {
    const r = bin(["--preset", "v9.9"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown kernel preset "v9.9"/);
  });
});
