/**
 * Module resolution hooks (node:module `register`) for model modules loaded by the built binary:
 * `@nestvisor/x86-arch`, `vmx`, `mmu` and `hypervisor` resolve to the copies bundled in the binary
 * (dist/bundled/*.js) instead of whatever the module's own node_modules hold. One copy of each
 * package per process: a model's policies get the same classes the machine was built from, and a
 * model module needs no installed @nestvisor packages at all. Everything else resolves as usual.
 */

interface HookData {
  /** Specifier → file URL of the bundled copy. */
  readonly map: Readonly<Record<string, string>>;
}

interface ResolveResult {
  readonly url: string;
  readonly shortCircuit?: boolean;
  readonly format?: string | null;
}

type NextResolve = (specifier: string, context: unknown) => ResolveResult | Promise<ResolveResult>;

let bundled: Readonly<Record<string, string>> = {};

export function initialize(data: HookData): void {
  bundled = data.map;
}

export function resolve(
  specifier: string,
  context: unknown,
  next: NextResolve,
): ResolveResult | Promise<ResolveResult> {
  const url = Object.hasOwn(bundled, specifier) ? bundled[specifier] : undefined;
  if (url !== undefined) return { url, format: "module", shortCircuit: true };
  return next(specifier, context);
}
