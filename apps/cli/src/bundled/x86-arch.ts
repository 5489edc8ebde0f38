/**
 * The copy of @nestvisor/x86-arch inside the nestvisor binary, as its own file (dist/bundled/x86-arch.js):
 * a model module's `import … from "@nestvisor/x86-arch"` resolves here (see model-hooks.ts), so the
 * module uses the very classes and constants the command runs with.
 */
export * from "@nestvisor/x86-arch";
