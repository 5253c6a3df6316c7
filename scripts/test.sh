#!/usr/bin/env bash
# Runs every test: vet, unit tests, and the end-to-end tests, which build and start
# the real programs. Installs the nats CLI the tests drive, at a pinned version,
# into bin/tools when it is missing. Extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOBIN="$PWD/bin/tools"
if [ ! -x "$GOBIN/nats" ]; then
  echo "installing the nats CLI into $GOBIN..."
  go install github.com/nats-io/natscli/nats@v0.5.0
fi
export PATH="$GOBIN:$PATH"

# What the tests drive besides Go: Debian's Chromium, headless, for the page's
# browser tests; python3 for the Python client's tests; script (util-linux) to give
# `nats stream view` a terminal; wrk, the load generator of the benchmarks' smoke
# run. Installed with apt-get when missing and this runs as root; otherwise their
# tests are skipped, except under CI (CI set), where a missing one fails the run
# here, before any test.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif [ -n "${CI:-}" ]; then
    echo "missing and cannot be installed here: ${missing[*]}" >&2
    exit 1
  else
    echo "missing and cannot be installed here: ${missing[*]}; their tests will be skipped" >&2
  fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
# The page's chart library: install the pinned npm package, so that the tests can
# check the vendored copy in internal/webui/static/vendor byte for byte against it.
if command -v npm >/dev/null 2>&1; then
  (cd web && npm ci --ignore-scripts --no-audit --no-fund --silent) ||
    echo "npm ci failed: the vendored chart library is checked against the lock file only" >&2
fi

go vet ./...
go test -count=1 -timeout 30m ./... "$@"

# A short fuzzing run of every fuzz target on every test run, so that the targets
# keep working; the corpus under testdata/fuzz holds past findings.
fuzz() {
  go test -run='^$' -fuzz="^$1\$" -fuzztime="${MINIRAY_FUZZTIME:-10s}" "$2"
}
fuzz FuzzDecode ./pkg/events
fuzz FuzzFold ./pkg/projection
fuzz FuzzDecodeFast ./pkg/projection
fuzz FuzzIngest ./cmd/collector
fuzz FuzzProgressEncoding ./pkg/tracking

# The benchmarks' smoke run: every step of scripts/bench.sh on a small stream, so
# that the suite cannot rot. It judges no target; the full run is ./scripts/bench.sh.
if command -v wrk >/dev/null 2>&1 || [ -n "${CI:-}" ]; then
  ./scripts/bench.sh --smoke
else
  echo "wrk is missing: the benchmarks' smoke run is skipped" >&2
fi
