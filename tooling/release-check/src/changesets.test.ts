/**
 * The changeset check (scripts/check-changesets.mjs): on this repository, then on small fixture
 * workspaces (with their own git repositories) for each rule it enforces.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");
const SCRIPT = join(REPO_ROOT, "scripts", "check-changesets.mjs");

interface CheckResult {
  readonly ok: boolean;
  readonly errors: readonly string[];
  readonly publishable: readonly string[];
  readonly changesets: readonly { readonly file: string; readonly releases: readonly unknown[] }[];
  readonly base: {
    readonly skipped?: string;
    readonly ref?: string;
    readonly changed?: readonly {
      readonly name: string;
      readonly files: readonly string[];
      readonly covered: boolean;
    }[];
  };
}

/** Runs the check with a clean environment (no CHANGESET_BASE unless given). */
function check(root: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}) {
  const { CHANGESET_BASE: _ignored, ...inherited } = process.env;
  const result = spawnSync(process.execPath, [SCRIPT, "--root", root, ...args], {
    encoding: "utf8",
    env: { ...inherited, ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function checkJson(root: string, args: readonly string[] = []): CheckResult {
  const { stdout, stderr } = check(root, [...args, "--json"]);
  if (!stdout.startsWith("{")) throw new Error(`no JSON from the check:\n${stdout}${stderr}`);
  return JSON.parse(stdout) as CheckResult;
}

describe("this repository", () => {
  it("passes the changeset check and says what it checked", () => {
    const result = check(
      REPO_ROOT,
      [],
      process.env.CHANGESET_BASE ? { CHANGESET_BASE: process.env.CHANGESET_BASE } : {},
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(
      /^changesets: \d+ pending .*publishable packages, versioned independently$/m,
    );
    expect(result.stdout).toMatch(/^(changed since |changed-package check skipped: )/m);
    expect(result.stdout).toMatch(/changeset check passed\n$/);
    expect(result.status).toBe(0);
  });

  it("counts the four libraries among the publishable packages", () => {
    const { publishable } = checkJson(REPO_ROOT);
    for (const name of ["x86-arch", "vmx", "mmu", "hypervisor"])
      expect(publishable).toContain(`@nestvisor/${name}`);
  });
});

/** `stderr` when it is exactly one line (without its newline); fails the test otherwise. */
function oneLine(stderr: string): string {
  expect(stderr).toMatch(/^[^\n]+\n$/);
  return stderr.trimEnd();
}

describe("usage", () => {
  it.each([
    ["an unknown argument", ["--bogus"], "unknown argument --bogus"],
    ["--base without a ref", ["--base"], "--base needs a value"],
    ["--base followed by an option", ["--base", "--json"], "--base needs a value"],
    ["--root without a directory", ["--root"], "--root needs a value"],
    ["a --root that does not exist", ["--root", "/no/such/dir"], "--root /no/such/dir: no such directory"],
    [
      "a --root that is not a workspace",
      ["--root", tmpdir()],
      `--root ${tmpdir()}: no pnpm-workspace.yaml there`,
    ],
    [
      "a --base that does not resolve",
      ["--base", "nope"],
      `--base nope: does not resolve to a commit in ${REPO_ROOT}`,
    ],
  ])("rejects %s with one line and exit 2", (_what, args, message) => {
    const result = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: "utf8" });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(oneLine(result.stderr)).toBe(
      `check-changesets: ${message} (usage: node scripts/check-changesets.mjs [--root DIR] [--base REF] [--json])`,
    );
  });

  it("--help prints the usage line and exits 0", () => {
    const result = spawnSync(process.execPath, [SCRIPT, "--help"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(
      "usage: node scripts/check-changesets.mjs [--root DIR] [--base REF] [--json]\n",
    );
  });
});

describe("fixture workspace", () => {
  let root: string;

  const write = (path: string, content: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };
  const manifest = (path: string, fields: Record<string, unknown>) =>
    write(`${path}/package.json`, `${JSON.stringify({ version: "1.0.0", ...fields }, null, 2)}\n`);
  const config = (fields: Record<string, unknown> = {}) =>
    write(
      ".changeset/config.json",
      JSON.stringify({
        fixed: [],
        linked: [],
        ignore: [],
        baseBranch: "main",
        privatePackages: { version: false, tag: false },
        ...fields,
      }),
    );
  const changeset = (name: string, frontMatter: string, summary = "Something changed.") =>
    write(`.changeset/${name}.md`, `---\n${frontMatter}\n---\n\n${summary}\n`);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "changeset-check-"));
    write("pnpm-workspace.yaml", "packages:\n  - packages/*\n  - tooling/*\n\nengineStrict: true\n");
    manifest("packages/a", { name: "@fx/a", files: ["dist", "data"], scripts: { build: "tsup" } });
    write("packages/a/src/index.ts", "export const a = 1;\n");
    write("packages/a/src/index.test.ts", "export {};\n");
    write("packages/a/src/testing/helper.ts", "export const h = 1;\n");
    write("packages/a/data/table.json", "{}\n");
    write("packages/a/README.md", "# a\n");
    manifest("packages/b", { name: "@fx/b", dependencies: { "@fx/a": "workspace:^" } });
    write("packages/b/src/index.ts", "export const b = 1;\n");
    manifest("tooling/t", { name: "@fx/t", private: true });
    write(".changeset/README.md", "# Changesets\n");
    config();
  });

  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  describe("validation", () => {
    it("accepts valid changesets and reports that no base ref was available", () => {
      changeset("one", '"@fx/a": minor\n"@fx/b": patch');
      changeset("two", "'@fx/b': major");
      changeset("empty", "", "");
      const result = checkJson(root);
      expect(result.errors).toEqual([]);
      expect(result.ok).toBe(true);
      expect(result.publishable).toEqual(["@fx/a", "@fx/b"]);
      expect(result.changesets.map((c) => c.file)).toEqual([
        ".changeset/empty.md",
        ".changeset/one.md",
        ".changeset/two.md",
      ]);
      expect(result.base.skipped).toBe("not a git work tree");
    });

    it.each([
      ["an unknown package", '"@fx/zzz": patch', "@fx/zzz is not a workspace package"],
      ["a private package", '"@fx/t": patch', "@fx/t is private and not versioned"],
      ["an invalid bump", '"@fx/a": mayor', '@fx/a has bump "mayor"; use major, minor, patch or none'],
      ["a package listed twice", '"@fx/a": patch\n"@fx/a": minor', "@fx/a is listed twice"],
      ["a line that is not `name: bump`", '"@fx/a" patch', 'expected `"package-name": bump`'],
    ])("rejects %s", (_what, frontMatter, message) => {
      changeset("bad", frontMatter);
      const result = check(root);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`error: .changeset/bad.md: `);
      expect(result.stderr).toContain(message);
    });

    it("rejects a release without a summary, and a file without front matter", () => {
      changeset("silent", '"@fx/a": patch', "");
      write(".changeset/plain.md", "Just text.\n");
      const { errors } = checkJson(root);
      expect(errors).toEqual([
        ".changeset/plain.md: does not start with a `---` front-matter line",
        ".changeset/silent.md: no summary below the front matter (it becomes the changelog entry)",
      ]);
    });

    it("rejects fixed or linked groups, ignored packages in changesets and unknown ignores", () => {
      config({ fixed: [["@fx/a", "@fx/b"]], linked: [["@fx/a", "@fx/b"]], ignore: ["@fx/b", "@fx/nope"] });
      changeset("ignored", '"@fx/b": patch');
      const { errors, publishable } = checkJson(root);
      expect(errors).toEqual([
        '.changeset/config.json: "fixed" groups tie package versions together; versions are independent',
        '.changeset/config.json: "linked" groups tie package versions together; versions are independent',
        ".changeset/config.json: ignore names @fx/nope, which is not in the workspace",
        ".changeset/ignored.md: @fx/b is ignored in .changeset/config.json",
      ]);
      expect(publishable).toEqual(["@fx/a"]);
    });
  });

  it("fails (exit 1, no stack trace) on a .changeset/config.json that is not JSON", () => {
    write(".changeset/config.json", "{ not json");
    const result = check(root);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^error: \.changeset\/config\.json: .*JSON.*\nchangeset check failed/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  describe("against a base ref", () => {
    const gitEnv = {
      ...process.env,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_AUTHOR_NAME: "fixture",
      GIT_AUTHOR_EMAIL: "fixture@example.invalid",
      GIT_COMMITTER_NAME: "fixture",
      GIT_COMMITTER_EMAIL: "fixture@example.invalid",
    };
    const git = (...args: string[]) => {
      const result = spawnSync("git", args, { cwd: root, encoding: "utf8", env: gitEnv });
      if (result.status !== 0) throw new Error(`git ${args.join(" ")}: ${result.stderr}`);
      return result.stdout.trim();
    };
    const commitAll = (message: string) => {
      git("add", "-A");
      git("commit", "-q", "-m", message);
      return git("rev-parse", "HEAD");
    };
    let base: string;

    beforeEach(() => {
      changeset("old", '"@fx/a": patch', "An older, already committed change.");
      git("init", "-q", "-b", "main");
      base = commitAll("base");
    });

    it("fails for a changed source file without a new changeset, even if an older one names the package", () => {
      write("packages/a/src/index.ts", "export const a = 2;\n");
      const result = checkJson(root, ["--base", base]);
      expect(result.ok).toBe(false);
      expect(result.base.changed).toEqual([
        { name: "@fx/a", files: ["packages/a/src/index.ts"], covered: false },
      ]);
      expect(result.errors).toEqual([
        `@fx/a changed since ${base} (packages/a/src/index.ts) but no changeset added since then names it: run \`pnpm changeset\``,
      ]);
    });

    it("passes once a changeset naming the package is added, even before it is committed", () => {
      write("packages/a/src/index.ts", "export const a = 2;\n");
      commitAll("change a");
      changeset("new", '"@fx/a": patch');
      const result = checkJson(root, ["--base", base]);
      expect(result.errors).toEqual([]);
      expect(result.base.changed).toEqual([
        { name: "@fx/a", files: ["packages/a/src/index.ts"], covered: true },
      ]);
    });

    it("ignores tests, test helpers, READMEs and script-only package.json edits", () => {
      write("packages/a/src/index.test.ts", "export const t = 1;\n");
      write("packages/a/src/testing/helper.ts", "export const h = 2;\n");
      write("packages/a/README.md", "# a, reworded\n");
      manifest("packages/a", { name: "@fx/a", files: ["dist", "data"], scripts: { build: "tsup --minify" } });
      write("tooling/t/src/index.ts", "export const t = 1;\n");
      const result = checkJson(root, ["--base", base]);
      expect(result.errors).toEqual([]);
      expect(result.base.changed).toEqual([]);
    });

    it("counts shipped data folders and published package.json fields", () => {
      write("packages/a/data/table.json", '{ "x": 1 }\n');
      manifest("packages/b", { name: "@fx/b", dependencies: { "@fx/a": "workspace:^", left: "1.0.0" } });
      const result = checkJson(root, ["--base", base]);
      expect(result.base.changed).toEqual([
        { name: "@fx/a", files: ["packages/a/data/table.json"], covered: false },
        { name: "@fx/b", files: ["packages/b/package.json"], covered: false },
      ]);
    });

    it("uses origin/main when it exists and is not HEAD, and CHANGESET_BASE when set", () => {
      git("update-ref", "refs/remotes/origin/main", base);
      expect(checkJson(root).base.skipped).toBe("HEAD is origin/main");
      write("packages/b/src/index.ts", "export const b = 2;\n");
      commitAll("change b");
      const fromRemote = checkJson(root);
      expect(fromRemote.base.ref).toBe("origin/main");
      expect(fromRemote.errors).toEqual([expect.stringContaining("@fx/b changed since origin/main")]);
      const fromEnv = check(root, [], { CHANGESET_BASE: "HEAD" });
      expect(fromEnv.status).toBe(0);
      expect(fromEnv.stdout).toContain("changed since HEAD");
    });

    it("treats a base that does not resolve as bad usage: one line, exit 2", () => {
      const fromEnv = check(root, [], { CHANGESET_BASE: "no-such-ref" });
      expect(fromEnv.status).toBe(2);
      expect(fromEnv.stdout).toBe("");
      expect(oneLine(fromEnv.stderr)).toMatch(
        /^check-changesets: CHANGESET_BASE=no-such-ref: does not resolve to a commit in .* \(usage: /,
      );
      const fromArgument = check(root, ["--base", "nope", "--json"], { CHANGESET_BASE: base });
      expect(fromArgument.status).toBe(2);
      expect(fromArgument.stdout).toBe("");
      expect(oneLine(fromArgument.stderr)).toMatch(
        /^check-changesets: --base nope: does not resolve to a commit/,
      );
    });
  });
});
