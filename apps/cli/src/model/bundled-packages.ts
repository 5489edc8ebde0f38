import { existsSync } from "node:fs";
import { register } from "node:module";
import { fileURLToPath } from "node:url";

/** The packages the binary bundles and offers to model modules. */
export const BUNDLED_PACKAGES = ["x86-arch", "vmx", "mmu", "hypervisor"] as const;

let registered = false;

/**
 * Makes `@nestvisor/<package>` imports of modules loaded afterwards (in this thread) resolve to the
 * copies bundled in the binary (model-hooks.ts). Only the built binary has them (`from` is the URL
 * of the running chunk, in dist/); run from its TypeScript sources (the unit tests), imports resolve
 * as usual. Returns whether the hooks are in place.
 */
export function useBundledPackages(from: string = import.meta.url): boolean {
  if (registered) return true;
  if (!from.endsWith(".js")) return false;
  const hooks = new URL("./model-hooks.js", from);
  const copies = BUNDLED_PACKAGES.map(
    (name) => [`@nestvisor/${name}`, new URL(`./bundled/${name}.js`, from)] as const,
  );
  if (!existsSync(fileURLToPath(hooks)) || copies.some(([, url]) => !existsSync(fileURLToPath(url))))
    return false;
  register(hooks, { data: { map: Object.fromEntries(copies.map(([name, url]) => [name, url.href])) } });
  registered = true;
  return true;
}
