export { checkLayers, type Violation } from "./check-layers";
export { type Layer, type LayerKind, LIBRARY_LAYERS, layerOf, mayDependOn } from "./layers";
export { readWorkspace, type WorkspacePackage } from "./workspace";
