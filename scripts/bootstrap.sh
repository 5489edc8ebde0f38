#!/usr/bin/env bash
# Installs what the repository needs on a fresh machine with Node 20.19+ and npm: the pnpm version
# pinned in package.json's packageManager field (globally, with npm; corepack is not relied on),
# then the dependencies from the committed lockfile. Idempotent and quick: when node_modules is
# newer than the lockfile and pnpm is the pinned version it does nothing. Output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "nestvisor needs Node.js 20.19 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

installed=node_modules/.modules.yaml
pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ -f "$installed" ] && [ ! pnpm-lock.yaml -nt "$installed" ] && command -v pnpm >/dev/null &&
  grep -q "\"packageManager\": \"pnpm@$pnpm_version\"" "$installed"; then
  exit 0
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "installing pnpm@$pnpm_version" >&2
  npm install --global "pnpm@$pnpm_version" >&2
fi

pnpm install --frozen-lockfile >&2
