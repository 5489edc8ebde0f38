/** The package version, injected at build time by tsup (`define`); "0.0.0-dev" from source. */
declare const __NESTVISOR_VERSION__: string | undefined;

export const VERSION: string =
  typeof __NESTVISOR_VERSION__ === "string" ? __NESTVISOR_VERSION__ : "0.0.0-dev";
