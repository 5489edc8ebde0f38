/**
 * The layer order of the design card (DESIGN.md §1): each layer may import only from layers to its
 * left. Apps sit on top and may use every package (and each other, if no cycle results). Tooling
 * presets are private build helpers that anything may use and that may use nothing of ours.
 */
export const LIBRARY_LAYERS = ["x86-arch", "vmx", "mmu", "hypervisor"] as const;

export type LayerKind = "library" | "app" | "tooling";

export interface Layer {
  readonly kind: LayerKind;
  /** Rank in the library order; apps are above every library, tooling is outside the order. */
  readonly rank: number;
}

/** Classifies a workspace package by the folder it lives in and its directory name. */
export function layerOf(workspaceFolder: string, directoryName: string): Layer | undefined {
  if (workspaceFolder === "tooling") return { kind: "tooling", rank: -1 };
  if (workspaceFolder === "apps") return { kind: "app", rank: LIBRARY_LAYERS.length };
  if (workspaceFolder === "packages") {
    const rank = (LIBRARY_LAYERS as readonly string[]).indexOf(directoryName);
    return rank < 0 ? undefined : { kind: "library", rank };
  }
  return undefined;
}

/** Whether a package in layer `from` may depend on one in layer `to`. */
export function mayDependOn(from: Layer, to: Layer): boolean {
  if (to.kind === "tooling") return true;
  if (from.kind === "tooling") return false;
  if (from.kind === "app") return true;
  return to.kind === "library" && to.rank < from.rank;
}
