#!/usr/bin/env node
// The changeset check of the test command (`pnpm changeset:check`; run by tooling/release-check).
//
// Always:
//   - .changeset/config.json keeps versions independent: no `fixed` or `linked` groups, and every
//     `ignore` entry names a workspace package;
//   - every pending changeset (.changeset/*.md except README.md) has front matter whose entries name
//     publishable workspace packages (not private, not ignored) with a bump of major, minor, patch
//     or none, each at most once, and a summary for the changelog when it releases anything.
// When a base ref is known (--base REF, else $CHANGESET_BASE, else origin/<baseBranch> when it
// exists and is not HEAD):
//   - every publishable package whose published content changed since the merge base (a non-test
//     file under src/ outside src/testing/, a data folder named in its `files`, or package.json
//     outside `scripts` and `devDependencies`) must be named by a changeset added or edited since
//     then (committed, staged, or not yet tracked).
// Without a base it says so and checks only the above.
//
// Usage: node scripts/check-changesets.mjs [--root DIR] [--base REF] [--json]
// Exit status: 0 when the check passes, 1 when it finds a problem, 2 for bad usage (an unknown
// argument, a missing value, a --root that is not a workspace, a base ref that does not resolve).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { CheckFailure, runCheckScript, TEST_FILE, UsageError } from "./check-script.mjs";

const USAGE = "usage: node scripts/check-changesets.mjs [--root DIR] [--base REF] [--json]";
const BUMPS = new Set(["major", "minor", "patch", "none"]);
/** package.json fields that do not change what a consumer installs. */
const UNPUBLISHED_FIELDS = new Set(["scripts", "devDependencies"]);

function parseArgs(argv) {
  const options = { root: resolve(import.meta.dirname, ".."), base: undefined, json: false, help: false };
  const value = (i) => {
    const next = argv[i + 1];
    if (next === undefined || next === "" || next.startsWith("--"))
      throw new UsageError(`${argv[i]} needs a value`);
    return next;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--json") options.json = true;
    else if (arg === "-h" || arg === "--help") options.help = true;
    else if (arg === "--root") options.root = resolve(value(i++));
    else if (arg === "--base") options.base = value(i++);
    else throw new UsageError(`unknown argument ${arg}`);
  }
  if (!existsSync(options.root) || !statSync(options.root).isDirectory())
    throw new UsageError(`--root ${options.root}: no such directory`);
  if (!existsSync(join(options.root, "pnpm-workspace.yaml")))
    throw new UsageError(`--root ${options.root}: no pnpm-workspace.yaml there`);
  return options;
}

/** Parses a JSON file of the repository, or fails the check naming it. */
function readJson(root, path) {
  try {
    return JSON.parse(readFileSync(join(root, path), "utf8"));
  } catch (error) {
    throw new CheckFailure(`${path}: ${error.message}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Workspace

/** The `packages:` globs of pnpm-workspace.yaml (only `dir` and `dir/*` forms are used here). */
function workspaceGlobs(root) {
  const text = readFileSync(join(root, "pnpm-workspace.yaml"), "utf8");
  const globs = [];
  let inPackages = false;
  for (const line of text.split("\n")) {
    if (/^packages:\s*$/.test(line)) inPackages = true;
    else if (inPackages && /^\s+-\s+/.test(line))
      globs.push(
        line
          .replace(/^\s+-\s+/, "")
          .replace(/["']/g, "")
          .trim(),
      );
    else if (inPackages && /^\S/.test(line)) inPackages = false;
  }
  return globs;
}

function readWorkspace(root) {
  const dirs = [];
  for (const glob of workspaceGlobs(root)) {
    if (glob.startsWith("!")) continue;
    if (glob.endsWith("/*")) {
      const parent = join(root, glob.slice(0, -2));
      if (!existsSync(parent)) continue;
      for (const entry of readdirSync(parent).sort()) dirs.push(join(parent, entry));
    } else if (!/[*?]/.test(glob)) {
      dirs.push(join(root, glob));
    } else {
      throw new CheckFailure(`pnpm-workspace.yaml: unsupported glob ${glob}`);
    }
  }
  const packages = new Map();
  for (const dir of dirs) {
    const file = join(dir, "package.json");
    if (!existsSync(file) || !statSync(dir).isDirectory()) continue;
    const manifest = readJson(root, relative(root, file));
    if (manifest.name)
      packages.set(manifest.name, { name: manifest.name, dir: relative(root, dir), manifest });
  }
  return packages;
}

// ------------------------------------------------------------------------------------------------
// Changesets

/** Parses one changeset file: front matter `"name": bump` lines, then the summary. */
function parseChangeset(text) {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines[0]?.trim() !== "---") return { error: "does not start with a `---` front-matter line" };
  const end = lines.indexOf("---", 1);
  if (end < 0) return { error: "front matter is not closed by a `---` line" };
  const releases = [];
  const errors = [];
  for (const [index, raw] of lines.slice(1, end).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^(["']?)([^"']+)\1\s*:\s*(["']?)([A-Za-z]+)\3$/.exec(line);
    if (match === null) errors.push(`line ${index + 2}: expected \`"package-name": bump\`, got \`${line}\``);
    else releases.push({ name: match[2], type: match[4] });
  }
  const summary = lines
    .slice(end + 1)
    .join("\n")
    .trim();
  return { releases, summary, errors };
}

function readChangesets(root) {
  const dir = join(root, ".changeset");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith(".md") && file.toLowerCase() !== "readme.md")
    .sort()
    .map((file) => ({
      file: `.changeset/${file}`,
      ...parseChangeset(readFileSync(join(dir, file), "utf8")),
    }));
}

function validate(root, workspace) {
  const errors = [];
  const configPath = join(root, ".changeset", "config.json");
  const config = existsSync(configPath) ? readJson(root, ".changeset/config.json") : undefined;
  if (config === undefined) errors.push(".changeset/config.json is missing");
  const ignored = new Set(config?.ignore ?? []);
  for (const group of ["fixed", "linked"]) {
    if ((config?.[group] ?? []).length > 0) {
      errors.push(
        `.changeset/config.json: "${group}" groups tie package versions together; versions are independent`,
      );
    }
  }
  for (const name of ignored) {
    if (!workspace.has(name))
      errors.push(`.changeset/config.json: ignore names ${name}, which is not in the workspace`);
  }
  const versionsPrivate = config?.privatePackages?.version === true;
  const changesets = readChangesets(root);
  for (const changeset of changesets) {
    const where = changeset.file;
    if (changeset.error) {
      errors.push(`${where}: ${changeset.error}`);
      continue;
    }
    for (const error of changeset.errors) errors.push(`${where}: ${error}`);
    const seen = new Set();
    for (const { name, type } of changeset.releases) {
      const pkg = workspace.get(name);
      if (pkg === undefined) errors.push(`${where}: ${name} is not a workspace package`);
      else if (pkg.manifest.private && !versionsPrivate)
        errors.push(`${where}: ${name} is private and not versioned`);
      else if (ignored.has(name)) errors.push(`${where}: ${name} is ignored in .changeset/config.json`);
      if (!BUMPS.has(type))
        errors.push(`${where}: ${name} has bump "${type}"; use major, minor, patch or none`);
      if (seen.has(name)) errors.push(`${where}: ${name} is listed twice`);
      seen.add(name);
    }
    if (changeset.summary === "" && changeset.releases.some((release) => release.type !== "none")) {
      errors.push(`${where}: no summary below the front matter (it becomes the changelog entry)`);
    }
  }
  return { config, ignored, changesets, errors };
}

// ------------------------------------------------------------------------------------------------
// Changed packages since a base ref

function git(root, args) {
  const result = spawnSync("git", args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.error) return { ok: false, stdout: "", stderr: String(result.error.message) };
  return { ok: result.status === 0, stdout: result.stdout, stderr: result.stderr.trim() };
}

function resolveCommit(root, ref) {
  const result = git(root, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
  return result.ok ? result.stdout.trim() : undefined;
}

/**
 * The base to compare with, or a reason there is none. `explicit` is the ref given with --base or
 * CHANGESET_BASE and `source` names which; one that does not resolve is a usage error.
 */
function chooseBase(root, explicit, source, baseBranch) {
  if (explicit !== undefined && explicit !== "") {
    const sha = resolveCommit(root, explicit);
    if (sha === undefined) throw new UsageError(`${source}: does not resolve to a commit in ${root}`);
    return { ref: explicit, sha };
  }
  if (!git(root, ["rev-parse", "--is-inside-work-tree"]).ok) return { reason: "not a git work tree" };
  const remote = `origin/${baseBranch}`;
  const sha = resolveCommit(root, remote);
  if (sha === undefined) return { reason: `no CHANGESET_BASE and no ${remote}` };
  if (sha === resolveCommit(root, "HEAD")) return { reason: `HEAD is ${remote}` };
  return { ref: remote, sha };
}

function changedFiles(root, baseSha) {
  const mergeBase = git(root, ["merge-base", baseSha, "HEAD"]);
  const from = mergeBase.ok ? mergeBase.stdout.trim() : baseSha;
  const diff = git(root, ["diff", "--name-only", "--relative", "--no-renames", "-z", from]);
  if (!diff.ok) throw new CheckFailure(`git diff ${from} failed: ${diff.stderr}`);
  const untracked = git(root, ["ls-files", "--others", "--exclude-standard", "-z"]);
  const files = new Set([...diff.stdout.split("\0"), ...(untracked.ok ? untracked.stdout.split("\0") : [])]);
  files.delete("");
  return { from, files: [...files].sort() };
}

function publishedManifestChanged(root, from, path) {
  const before = git(root, ["show", `${from}:./${path}`]);
  if (!before.ok) return true; // a new package
  const current = join(root, path);
  if (!existsSync(current)) return true;
  const strip = (text) => {
    const manifest = JSON.parse(text);
    for (const field of UNPUBLISHED_FIELDS) delete manifest[field];
    return JSON.stringify(manifest);
  };
  return strip(before.stdout) !== strip(readFileSync(current, "utf8"));
}

/** Why a changed file alters what the package publishes, or undefined. */
function publishedChange(root, from, pkg, file) {
  const rel = file.slice(pkg.dir.length + 1);
  if (rel === "package.json") return publishedManifestChanged(root, from, file) ? file : undefined;
  if (rel.startsWith("src/")) return TEST_FILE.test(rel) || rel.startsWith("src/testing/") ? undefined : file;
  const dataFolders = (pkg.manifest.files ?? [])
    .filter((entry) => !entry.startsWith("!") && !/[*?]/.test(entry))
    .map((entry) => entry.replace(/^\.\//, "").replace(/\/$/, ""))
    .filter((entry) => entry !== "dist" && entry !== "src" && entry !== "README.md");
  return dataFolders.includes(rel.split("/")[0] ?? "") ? file : undefined;
}

function checkChangedPackages(root, workspace, validation, base) {
  const { from, files } = changedFiles(root, base.sha);
  const covered = new Set();
  const changesetsSinceBase = [];
  for (const changeset of validation.changesets) {
    if (!files.includes(changeset.file)) continue;
    changesetsSinceBase.push(changeset.file);
    for (const release of changeset.releases ?? []) covered.add(release.name);
  }
  const changed = [];
  for (const pkg of workspace.values()) {
    if (pkg.manifest.private || validation.ignored.has(pkg.name)) continue;
    const reasons = files
      .filter((file) => file.startsWith(`${pkg.dir}/`))
      .map((file) => publishedChange(root, from, pkg, file))
      .filter((file) => file !== undefined);
    if (reasons.length > 0) changed.push({ name: pkg.name, files: reasons, covered: covered.has(pkg.name) });
  }
  return { mergeBase: from, changesetsSinceBase, changed };
}

// ------------------------------------------------------------------------------------------------

function check(options) {
  const workspace = readWorkspace(options.root);
  const validation = validate(options.root, workspace);
  const errors = [...validation.errors];
  const [explicit, source] =
    options.base !== undefined
      ? [options.base, `--base ${options.base}`]
      : [process.env.CHANGESET_BASE, `CHANGESET_BASE=${process.env.CHANGESET_BASE}`];
  const base = chooseBase(options.root, explicit, source, validation.config?.baseBranch ?? "main");
  let changes;
  if (base.sha !== undefined) {
    changes = checkChangedPackages(options.root, workspace, validation, base);
    for (const pkg of changes.changed.filter((entry) => !entry.covered)) {
      const shown = pkg.files.slice(0, 5).join(", ") + (pkg.files.length > 5 ? ", ..." : "");
      errors.push(
        `${pkg.name} changed since ${base.ref} (${shown}) but no changeset added since then names it: run \`pnpm changeset\``,
      );
    }
  }
  const publishable = [...workspace.values()].filter(
    (pkg) => !pkg.manifest.private && !validation.ignored.has(pkg.name),
  );
  const result = {
    ok: errors.length === 0,
    errors,
    publishable: publishable.map((pkg) => pkg.name),
    changesets: validation.changesets.map(({ file, releases = [] }) => ({ file, releases })),
    base: base.sha === undefined ? { skipped: base.reason } : { ref: base.ref, sha: base.sha, ...changes },
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const releases = result.changesets.flatMap((changeset) =>
      changeset.releases.map((r) => `${r.name}@${r.type}`),
    );
    console.log(
      `changesets: ${result.changesets.length} pending (${releases.join(", ") || "no releases"}); ` +
        `${result.publishable.length} publishable packages, versioned independently`,
    );
    if (changes !== undefined) {
      const changed = changes.changed.map((pkg) => `${pkg.name}${pkg.covered ? "" : " (no changeset)"}`);
      console.log(
        `changed since ${base.ref} (merge base ${changes.mergeBase.slice(0, 12)}): ${changed.join(", ") || "no publishable package"}`,
      );
    } else if (base.reason !== undefined) {
      console.log(
        `changed-package check skipped: ${base.reason} (set CHANGESET_BASE to a ref to compare with)`,
      );
    }
    for (const error of errors) console.error(`error: ${error}`);
    console.log(result.ok ? "changeset check passed" : `changeset check failed: ${errors.length} problem(s)`);
  }
  return result.ok ? 0 : 1;
}

process.exitCode = runCheckScript({
  name: "check-changesets",
  usage: USAGE,
  parseArgs,
  check,
  failureLines: (message) => [`error: ${message}`, "changeset check failed: it could not run to the end"],
});
