#!/usr/bin/env bash
# Measures WebSocket sessions with the load tool's ws scenario
# (BENCHMARKS.md, "WebSocket sessions (load tool)"):
#
#   idle:     IDLE (10,000) idle device-page sessions on one gateway: the
#             gateway's RSS (process_resident_memory_bytes from its /metrics)
#             once every session is open and 2 s have passed, minus before,
#             per session.
#   commands: 100 sessions, each on its own link and device, 10 set commands
#             a second each (1,000/s), for CMD_SECONDS: set -> ack round trip
#             from each command's due time (open model), set -> echo.
#   revoke:   REVOKE (10,000) sessions over REVOKE_LINKS (100) links, half on
#             each of two gateways sharing one redis-server; every link is
#             disabled at once through the owner API: each session's close
#             frame timed from its link's disable call's start; and opens of
#             each disabled link on each gateway, from the call's return until
#             one is refused.
#
# Every round starts fresh gateways on a fresh redis-server; the devices run
# in a separate `linkgate devices` process. Medians of ROUNDS rounds. Run it
# under `flock /tmp/bench.lock` when others measure on the same machine.
#
# Needs redis-server and python3. Raises `ulimit -n` (10,000 sessions hold
# 10,000 sockets in the gateway and as many in the load tool).
# Usage: loadtest/bench-ws.sh [ROUNDS=3 MODES="idle commands revoke" IDLE=10000 REVOKE=10000 REVOKE_LINKS=100 CMD_SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-idle commands revoke}
IDLE=${IDLE:-10000}
REVOKE=${REVOKE:-10000}
REVOKE_LINKS=${REVOKE_LINKS:-100}
CMD_SECONDS=${CMD_SECONDS:-20}
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
go build -o "$work/linkgate" ./cmd/linkgate
go build -o "$work/wsload" ./loadtest/wsload

# up N: a fresh redis-server, N gateways on it, the device fleet; sets
# rport, gw (base URLs), gwpid, apikey.
up() {
	rport=$(free_port)
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
	local redis="redis://127.0.0.1:$rport" keys out owner
	keys="1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
	out=$("$work/linkgate" owner create bench --redis "$redis")
	apikey=$(awk '/^owner api key:/ {print $4}' <<<"$out")
	owner=$(awk '/^owner id:/ {print $3}' <<<"$out")
	gw=() gwpid=()
	for _ in $(seq 1 "$1"); do
		local port
		port=$(free_port)
		"$work/linkgate" serve --addr "127.0.0.1:$port" --redis "$redis" --keys "$keys" --log-level warn \
			>>"$work/gw.out" 2>>"$work/gw.log" &
		gwpid+=($!)
		gw+=("http://127.0.0.1:$port")
		until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
	done
	"$work/linkgate" devices --redis "$redis" ${owner:+--owner "$owner"} --log-level warn 2>>"$work/devices.log" &
	fleetpid=$!
}

down() {
	kill "${gwpid[@]}" "$fleetpid" 2>/dev/null || true
	wait "${gwpid[@]}" "$fleetpid" 2>/dev/null || true
	redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
	sleep 1
}

# fig FILE EXPR: one figure of a JSON report.
fig() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

for round in $(seq 1 "$ROUNDS"); do
	for mode in $MODES; do
		out="$work/$mode-$round.json"
		case $mode in
		idle)
			up 1
			"$work/wsload" -target "${gw[0]}" -api-key "$apikey" -n "$IDLE" -links 100 -devices 10 -ramp 2000 \
				-duration $((IDLE / 2000 + 8))s >"$out" 2>"$out.err"
			down
			echo "idle $round: $(fig "$out" 'r["info"]["rss_per_session_kib"]') KiB/session, $(fig "$out" 'r["info"]["goroutines_per_session"]') goroutines/session, opened $(fig "$out" 'r["info"]["sessions_opened"]')" >&2
			echo "idle $(fig "$out" 'r["info"]["rss_per_session_kib"]') $(fig "$out" 'r["info"]["heap_per_session_kib"]') $(fig "$out" 'r["info"]["goroutines_per_session"]')" >>"$work/results"
			;;
		commands)
			up 1
			"$work/wsload" -target "${gw[0]}" -api-key "$apikey" -n 100 -links 100 -devices 100 -rate 10 \
				-duration "${CMD_SECONDS}s" >"$out" 2>"$out.err"
			down
			echo "commands $round: ack p50 $(fig "$out" 'r["metrics"]["command"]["p50"]') p99 $(fig "$out" 'r["metrics"]["command"]["p99"]') ms, echo p99 $(fig "$out" 'r["metrics"]["echo"]["p99"]') ms, acks $(fig "$out" 'r["counts"].get("ack ok", 0)')" >&2
			echo "commands $(fig "$out" 'r["metrics"]["command"]["p50"]') $(fig "$out" 'r["metrics"]["command"]["p99"]') $(fig "$out" 'r["metrics"]["echo"]["p50"]') $(fig "$out" 'r["metrics"]["echo"]["p99"]') $(fig "$out" 'r["counts"].get("ack ok", 0) / r["elapsed"]')" >>"$work/results"
			;;
		revoke)
			up 2
			"$work/wsload" -target "${gw[0]}" -api-key "$apikey" -n "$REVOKE" -links "$REVOKE_LINKS" -devices 10 -ramp 2000 \
				-instances "${gw[1]}" -revoke >"$out" 2>"$out.err"
			down
			echo "revoke $round: close p99 $(fig "$out" 'r["metrics"]["revoke"]["p99"]') max $(fig "$out" 'r["metrics"]["revoke"]["max"]') ms, refuse p99 $(fig "$out" 'r["metrics"]["refuse"]["p99"]') ms, counts $(fig "$out" 'r["counts"]')" >&2
			echo "revoke $(fig "$out" 'r["metrics"]["revoke"]["p50"]') $(fig "$out" 'r["metrics"]["revoke"]["p99"]') $(fig "$out" 'r["metrics"]["revoke"]["max"]') $(fig "$out" 'r["metrics"]["refuse"]["p50"]') $(fig "$out" 'r["metrics"]["refuse"]["p99"]') $(fig "$out" 'r["metrics"]["refuse"]["max"]') $(fig "$out" 'r["metrics"]["disable"]["p99"]')" >>"$work/results"
			;;
		esac
		cp "$out" "/tmp/bench-ws-$mode-$round.json" 2>/dev/null || true
	done
done

echo "go $(go env GOVERSION); $(nproc) cores; ROUNDS=$ROUNDS; medians:"
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, *vals = line.split()
    rows.setdefault(mode, []).append([float(v) for v in vals])
names = {
    "idle": ["RSS KiB/session", "heap KiB/session", "goroutines/session"],
    "commands": ["ack p50 ms", "ack p99 ms", "echo p50 ms", "echo p99 ms", "acks/s"],
    "revoke": ["close p50 ms", "close p99 ms", "close max ms", "refuse p50 ms", "refuse p99 ms", "refuse max ms", "disable call p99 ms"],
}
for mode, runs in rows.items():
    meds = [statistics.median(col) for col in zip(*runs)]
    print(mode + ": " + ", ".join(f"{n} {m:.2f}" for n, m in zip(names[mode], meds)))
    for r in runs:
        print("   raw: " + " ".join(f"{v:.2f}" for v in r))
EOF
