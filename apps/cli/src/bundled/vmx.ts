/**
 * The copy of @nestvisor/vmx inside the nestvisor binary, as its own file (dist/bundled/vmx.js):
 * a model module's `import … from "@nestvisor/vmx"` resolves here (see model-hooks.ts), so the
 * module uses the very classes and constants the command runs with.
 */
export * from "@nestvisor/vmx";
