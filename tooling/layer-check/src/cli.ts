#!/usr/bin/env node
import { resolve } from "node:path";
import { checkLayers } from "./check-layers";

const root = resolve(process.argv[2] ?? resolve(import.meta.dirname, "../../.."));
const violations = checkLayers(root);
for (const v of violations) process.stderr.write(`${v.file}:${v.line}: ${v.message}\n`);
if (violations.length > 0) {
  process.stderr.write(`layer check: ${violations.length} violation(s)\n`);
  process.exit(1);
}
process.stdout.write("layer check: every import follows x86-arch <- vmx <- mmu <- hypervisor <- apps\n");
