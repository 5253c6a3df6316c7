#!/usr/bin/env bash
# Brings miniray up on its embedded default: builds the programs, starts the collector
# (with its embedded NATS server, data under .demo/data) and the dashboard, runs the
# example jobs, prints the dashboard's URL and keeps everything running until Ctrl-C.
# Run it again later: the history in .demo/data is kept and replayed.
#
# Addresses, all on loopback by default: MINIRAY_NATS_LISTEN (NATS, 127.0.0.1:4222),
# MINIRAY_HTTP (the dashboard, 127.0.0.1:8080) and MINIRAY_COLLECTOR_HTTP (the
# collector's health checks, metrics and event ingest, 127.0.0.1:8081). The collector
# sends the spool files it finds in MINIRAY_SPOOL_DIR (default: miniray/spool in the
# user's cache dir), where the example jobs spool too.
set -euo pipefail
cd "$(dirname "$0")/.."

nats_addr=${MINIRAY_NATS_LISTEN:-127.0.0.1:4222}
http_addr=${MINIRAY_HTTP:-127.0.0.1:8080}
collector_http=${MINIRAY_COLLECTOR_HTTP:-127.0.0.1:8081}
nats_url="nats://$nats_addr"

# Something already answering on one of the addresses is most likely an up.sh still
# running: stop before touching its binaries and logs.
for addr in "$nats_addr" "$collector_http" "$http_addr"; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    echo "$addr is in use (is miniray already up?); stop it first, or move this one" \
      "with MINIRAY_NATS_LISTEN, MINIRAY_COLLECTOR_HTTP and MINIRAY_HTTP" >&2
    exit 1
  fi
done

echo "building..."
go build -o bin/ ./cmd/collector ./cmd/dashboard \
  ./examples/train ./examples/infer ./examples/tune ./examples/fail
mkdir -p .demo

pids=()
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

# wait_for NAME PID TEXT: waits until the program's log says TEXT, or fails with the
# log if the program exits first. The log line, not an open port, tells that it is
# our program that is ready and not something else on the same port.
wait_for() {
  local name=$1 pid=$2 text=$3
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited; its log (.demo/$name.log):" >&2
      cat ".demo/$name.log" >&2
      exit 1
    fi
    if grep -q "$text" ".demo/$name.log" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name was not ready within 60s; see .demo/$name.log" >&2
  exit 1
}

# Flags, not the MINIRAY_ variables, so that each program gets its own address.
bin/collector --nats-url "" --data-dir .demo/data --nats-listen "$nats_addr" \
  --http "$collector_http" >.demo/collector.log 2>&1 &
pids+=($!)
wait_for collector "${pids[-1]}" "collector ready"

bin/dashboard --nats-url "$nats_url" --http "$http_addr" >.demo/dashboard.log 2>&1 &
pids+=($!)
wait_for dashboard "${pids[-1]}" "projection caught up"

echo "running the example jobs (their output is in .demo/jobs.log)..."
{
  echo "--- $(date -u +%FT%TZ)"
  export MINIRAY_NATS_URL=$nats_url
  bin/train --epochs 100
  bin/infer
  bin/tune
  bin/fail
} >>.demo/jobs.log 2>&1 || echo "an example job failed; see .demo/jobs.log" >&2

echo
echo "miniray is up: dashboard at http://$http_addr"
echo "NATS at $nats_url; logs in .demo/. Press Ctrl-C to stop."

# Run until Ctrl-C; if the collector or the dashboard dies meanwhile, say so and stop
# the other, rather than go on serving half a system.
set +e
wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    name=$([ "$i" = 0 ] && echo collector || echo dashboard)
    echo "$name exited (status $status); the end of its log (.demo/$name.log):" >&2
    tail -n 20 ".demo/$name.log" >&2
  fi
done
exit 1
