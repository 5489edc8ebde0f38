#!/usr/bin/env node
// Rewrites the figure tables of examples/*/README.md from the model (`./nestvisor compare --json`),
// for after a change that moves the figures. Run from the repository root after `pnpm build`:
//
//   node scripts/regen-example-tables.mjs [--check]
//
// It rewrites, in place, the rows the READMEs already have (matched by their first cell) and the
// sentences that quote figures: enlightened-vmcs (the L2 table, the CPUID event table, the L0/L1
// shares and the L3 sentence), dvh-virtual-passthrough (the L1/L2/L3 table) and root-cache-8 (the
// processes table). With --check it writes nothing and exits 1 when a README would change.
// Exit status: 0 done (or up to date), 1 out of date (--check), 2 bad usage or a README whose
// shape it no longer recognises (it names the README and the row).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const check = args.includes("--check");
for (const a of args) {
  if (a !== "--check") {
    console.error(`regen-example-tables: unknown argument "${a}" (usage: [--check])`);
    process.exit(2);
  }
}

function compare(...cliArgs) {
  const out = execFileSync("./nestvisor", ["compare", ...cliArgs, "--json"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  return JSON.parse(out).rows;
}
const fmt = (x) => Math.round(x).toLocaleString("en-US");
const pct = (a, b) => `${((b / a - 1) * 100).toFixed(1).replace("-", "−")} %`;
const pick = (rows, w, model, level) =>
  rows.find(
    (r) => r.workload === w && (r.model !== null) === model && (level === undefined || r.level === level),
  );

function replaceOnce(text, pattern, replacement, where) {
  let n = 0;
  const out = text.replace(pattern, (...m) => {
    n++;
    return typeof replacement === "function" ? replacement(...m) : replacement;
  });
  if (n !== 1) {
    console.error(`regen-example-tables: ${where}: expected one match of ${pattern}, found ${n}`);
    process.exit(2);
  }
  return out;
}

const changed = [];
function update(path, edit) {
  const before = readFileSync(path, "utf8");
  const after = edit(before, path);
  if (after !== before) {
    changed.push(path);
    if (!check) writeFileSync(path, after);
  }
}

// enlightened-vmcs
update("examples/enlightened-vmcs/README.md", (s, path) => {
  const W = "cpuid,vmcall,inl_from_kernel,inl_from_qemu,toggle_cr0_wp,cr3_switch,touch_memory,mixed";
  const M = "examples/enlightened-vmcs/model.mjs";
  const a = compare("--model", M, "--levels", "2", "--presets", "v6.12", "--workloads", W);
  const b = compare(
    "--model",
    M,
    "--levels",
    "2",
    "--presets",
    "v6.12",
    "--workloads",
    W,
    "--flag",
    "shadowVmcs=off",
  );
  const c = compare("--model", M, "--levels", "2", "--presets", "v5.2", "--workloads", W);
  for (const w of W.split(",")) {
    const [ns, k, e, k2, e2] = [
      pick(b, w, false),
      pick(a, w, false),
      pick(a, w, true),
      pick(c, w, false),
      pick(c, w, true),
    ];
    const row =
      `| ${w} | ${fmt(ns.cyclesPerIteration)} | ${fmt(k.cyclesPerIteration)} | ${fmt(e.cyclesPerIteration)} | ` +
      `${pct(k.cyclesPerIteration, e.cyclesPerIteration)} | ${fmt(k2.cyclesPerIteration)} | ${fmt(e2.cyclesPerIteration)} | ` +
      `${pct(k2.cyclesPerIteration, e2.cyclesPerIteration)} |`;
    s = replaceOnce(s, new RegExp(`^\\| ${w} \\| [^\\n]*$`, "m"), row, `${path} row ${w}`);
  }
  const k = pick(a, "cpuid", false);
  const e = pick(a, "cpuid", true);
  for (const ev of [
    "VMPTRLD",
    "VMCLEAR",
    "VMWRITE",
    "VMREAD",
    "VMCS12_READ",
    "VMCS12_WRITE",
    "PREPARE_VMCS02_RARE",
    "RARE_FIELD_VMREAD_DEFERRED",
  ]) {
    const kv = Math.round(k.counters[ev] ?? 0);
    const ev2 = Math.round(e.counters[ev] ?? 0);
    s = replaceOnce(
      s,
      new RegExp(`^\\| ${ev} \\| \\d+ \\| \\d+ \\| `, "m"),
      `| ${ev} | ${kv} | ${ev2} | `,
      `${path} row ${ev}`,
    );
  }
  const saved = k.cyclesPerIteration - e.cyclesPerIteration;
  s = replaceOnce(
    s,
    /^\| \*\*total\*\* \| [\d,]+ \| [\d,]+ \| \*\*[−-][\d,]+\*\* \|/m,
    `| **total** | ${fmt(k.cyclesPerIteration)} | ${fmt(e.cyclesPerIteration)} | **−${fmt(saved)}** |`,
    `${path} total`,
  );
  s = replaceOnce(
    s,
    /L0's share drops from [\d,]+ to [\d,]+ cycles, L1's\nfrom [\d,]+ to [\d,]+\./,
    `L0's share drops from ${fmt(k.cyclesByLevel.L0)} to ${fmt(e.cyclesByLevel.L0)} cycles, L1's\nfrom ${fmt(k.cyclesByLevel.L1)} to ${fmt(e.cyclesByLevel.L1)}.`,
    `${path} shares`,
  );
  const l3 = compare(
    "--model",
    M,
    "--levels",
    "3",
    "--presets",
    "v6.12",
    "--workloads",
    "cpuid,mixed",
    "--iterations",
    "100",
  );
  const [kc, ec, km, em] = [
    pick(l3, "cpuid", false),
    pick(l3, "cpuid", true),
    pick(l3, "mixed", false),
    pick(l3, "mixed", true),
  ];
  return replaceOnce(
    s,
    /`cpuid` [\d,]+ → [\d,]+ cycles\n\([−-][\d.]+ %, \d+ → \d+ hardware exits\), `mixed` [\d,]+ → [\d,]+ \(100 iterations\)/,
    `\`cpuid\` ${fmt(kc.cyclesPerIteration)} → ${fmt(ec.cyclesPerIteration)} cycles\n(${pct(kc.cyclesPerIteration, ec.cyclesPerIteration)}, ` +
      `${Math.round(kc.counters.HARDWARE_VM_EXIT)} → ${Math.round(ec.counters.HARDWARE_VM_EXIT)} hardware exits), ` +
      `\`mixed\` ${fmt(km.cyclesPerIteration)} → ${fmt(em.cyclesPerIteration)} (100 iterations)`,
    `${path} L3 sentence`,
  );
});

// dvh-virtual-passthrough
update("examples/dvh-virtual-passthrough/README.md", (s, path) => {
  const W = "inl_from_kernel,outl_to_kernel,inl_from_qemu,inl_from_pmtimer,cpuid,mixed";
  const M = "examples/dvh-virtual-passthrough/model.mjs";
  const rows = [
    ...compare("--model", M, "--levels", "1,2", "--presets", "v6.12", "--workloads", W),
    ...compare("--model", M, "--levels", "3", "--presets", "v6.12", "--workloads", W, "--iterations", "100"),
  ];
  for (const w of W.split(",")) {
    const cells = [
      pick(rows, w, false, 1),
      pick(rows, w, false, 2),
      pick(rows, w, true, 2),
      pick(rows, w, false, 3),
      pick(rows, w, true, 3),
    ]
      .map((r) => fmt(r.cyclesPerIteration))
      .join(" | ");
    s = replaceOnce(
      s,
      new RegExp(`^(\\| ${w} \\([^)]*\\) \\| )[^\\n]*$`, "m"),
      (_m, head) => `${head}${cells} |`,
      `${path} row ${w}`,
    );
  }
  return s;
});

// root-cache-8
update("examples/root-cache-8/README.md", (s, path) => {
  const M = "examples/root-cache-8/model.mjs";
  for (const processes of [3, 4, 5, 6, 8, 9, 10, 12]) {
    const cell = (rows) => {
      const k = pick(rows, "cr3_switch", false).cyclesPerIteration;
      const e = pick(rows, "cr3_switch", true).cyclesPerIteration;
      return [fmt(k), Math.round(k) === Math.round(e) ? fmt(e) : `${fmt(e)} (${pct(k, e)})`];
    };
    const common = [
      "--model",
      M,
      "--workloads",
      "cr3_switch",
      "--presets",
      "v6.12",
      "--param",
      `processes=${processes}`,
    ];
    const [a1, b1] = cell(compare(...common, "--levels", "1", "--flag", "ept=off"));
    const [a2, b2] = cell(compare(...common, "--levels", "2", "--flag", "l1Ept=off"));
    s = replaceOnce(
      s,
      new RegExp(`^\\| ${processes} \\| [^\\n]*$`, "m"),
      `| ${processes} | ${a1} | ${b1} | ${a2} | ${b2} |`,
      `${path} row ${processes}`,
    );
  }
  return s;
});

if (changed.length === 0) console.log("regen-example-tables: every table is up to date");
else console.log(`regen-example-tables: ${check ? "out of date" : "rewrote"}: ${changed.join(", ")}`);
process.exit(check && changed.length > 0 ? 1 : 0);
