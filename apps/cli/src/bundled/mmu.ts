/**
 * The copy of @nestvisor/mmu inside the nestvisor binary, as its own file (dist/bundled/mmu.js):
 * a model module's `import … from "@nestvisor/mmu"` resolves here (see model-hooks.ts), so the
 * module uses the very classes and constants the command runs with.
 */
export * from "@nestvisor/mmu";
