#!/usr/bin/env bash
# Runs miniray's benchmarks in one run on this machine, each beside the limit that
# NATS reaches here (see docs/benchmarks.md): builds the collector, the dashboard and
# the bench programs, installs the nats CLI (pinned, into bin/tools) and wrk (Debian's
# package) when they are missing, then runs bin/bench/suite.
#
#   ./scripts/bench.sh              full run, under 10 minutes on 2 cores: prints the
#                                   table, writes bench/results/latest.json and the
#                                   table into docs/benchmarks.md
#   ./scripts/bench.sh --smoke      about 20,000 events, a minute or two: checks that
#                                   every step works, judges no target, writes only
#                                   bench/results/smoke.json
#   ./scripts/bench.sh --profile D  CPU and heap profiles of the dashboard and of the
#                                   ingest job into directory D, with pprof's top
#                                   functions as text
#   --keep                          keeps the run's logs and data directories
#
# Everything listens on loopback ports chosen at random; every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

args=()
profile=""
while [ $# -gt 0 ]; do
  case $1 in
    --smoke | --keep) args+=("$1") ;;
    --profile)
      profile=${2:-}
      if [ -z "$profile" ]; then
        echo "--profile needs a directory" >&2
        exit 2
      fi
      shift
      args+=(--profile "$profile")
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "unknown argument: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
  shift
done

export GOBIN="$PWD/bin/tools"
if [ ! -x "$GOBIN/nats" ]; then
  echo "installing the nats CLI into $GOBIN..."
  go install github.com/nats-io/natscli/nats@v0.5.0
fi

# wrk generates the API load: written in C on an event loop, it takes less of the
# two cores that it shares with the dashboard than a load generator in Go would.
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing wrk..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is missing and cannot be installed here: install Debian's wrk package" >&2
    exit 1
  fi
fi

echo "building..."
go build -o bin/ ./cmd/collector ./cmd/dashboard
go build -o bin/bench/ ./bench/cmd/...
if [ -n "$profile" ]; then
  # A dashboard for profiling only: bench/dashpprof/pprof.go laid into cmd/dashboard
  # by an overlay, so that the real dashboard carries no profiling endpoints.
  overlay=$(mktemp)
  trap 'rm -f "$overlay"' EXIT
  printf '{"Replace":{"%s":"%s"}}\n' "$PWD/cmd/dashboard/zz_benchpprof.go" \
    "$PWD/bench/dashpprof/pprof.go" >"$overlay"
  go build -tags benchpprof -overlay "$overlay" -o bin/bench/dashboard-pprof ./cmd/dashboard
fi

bin/bench/suite --wrk "$(command -v wrk)" "${args[@]}"
