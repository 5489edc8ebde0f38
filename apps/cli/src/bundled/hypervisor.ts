/**
 * The copy of @nestvisor/hypervisor inside the nestvisor binary, as its own file (dist/bundled/hypervisor.js):
 * a model module's `import … from "@nestvisor/hypervisor"` resolves here (see model-hooks.ts), so the
 * module uses the very classes and constants the command runs with.
 */
export * from "@nestvisor/hypervisor";
