#!/usr/bin/env bash
# Refreshes the page's vendored chart library: installs the version that
# web/package-lock.json pins, from the npm registry, and copies its built files and
# its license into internal/webui/static/vendor. The copies are committed, so that
# building the dashboard needs neither npm nor a network; run this after changing
# the version in web/package.json (and `npm install` there to update the lock file).
set -euo pipefail
cd "$(dirname "$0")/.."

(cd web && npm ci --ignore-scripts --no-audit --no-fund)

src=web/node_modules/uplot
dst=internal/webui/static/vendor
mkdir -p "$dst"
cp "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$dst/"
cp "$src/LICENSE" "$dst/uPlot.LICENSE"
echo "vendored uplot $(node -p "require('./$src/package.json').version") into $dst"
