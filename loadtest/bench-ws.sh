#!/usr/bin/env bash
# Measures WebSocket sessions with the load tool's ws scenario
# (BENCHMARKS.md, "WebSocket sessions (load tool)"):
#
#   idle:     IDLE (10,000) idle device-page sessions on one gateway: the
#             gateway's RSS (process_resident_memory_bytes from its /metrics)
#             once every session is open and SETTLE (2s) has passed, minus
#             before, per session. SETTLE=125s samples the settled process:
#             past Go's forced collection (every 2 minutes when none ran)
#             and fasthttp's idle workers' exit (10 s), so the garbage and
#             the worker stacks of the opening burst are gone.
#   commands: 100 sessions, each on its own link and device, 10 set commands
#             a second each (1,000/s), for CMD_SECONDS: set -> ack round trip
#             from each command's due time (open model), set -> echo.
#   revoke:   REVOKE (10,000) sessions over REVOKE_LINKS (1,000) links, half
#             on each of two gateways sharing one redis-server; the links are
#             disabled through the owner API one at a time, REVOKE_RATE (20)
#             a second, as owners do: each session's close frame timed from
#             its link's disable call's start; and opens of each disabled
#             link on each gateway, from the call's return until one is
#             refused; the gateways' stage histograms (feed lag, relink,
#             close write).
#   stress:   the same with STRESS_LINKS (100) links all disabled at the same
#             instant.
#
# The load is `linkgate loadtest ws` and `linkgate loadtest revoke`. Every
# round starts fresh gateways on a fresh redis-server; the devices run in a
# separate `linkgate devices` process. Medians of ROUNDS rounds; the load
# average is printed before and after each run. Run it under
# `flock /tmp/bench.lock` when others measure on the same machine.
#
# Needs redis-server and python3. Raises `ulimit -n` (10,000 sessions hold
# 10,000 sockets in the gateway and as many in the load tool).
# Usage: loadtest/bench-ws.sh [ROUNDS=3 SETTLE=2s MODES="idle commands revoke stress" IDLE=10000 REVOKE=10000 REVOKE_LINKS=1000 REVOKE_RATE=20 STRESS_LINKS=100 CMD_SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-idle commands revoke stress}
IDLE=${IDLE:-10000}
REVOKE=${REVOKE:-10000}
REVOKE_LINKS=${REVOKE_LINKS:-1000}
REVOKE_RATE=${REVOKE_RATE:-20}
STRESS_LINKS=${STRESS_LINKS:-100}
CMD_SECONDS=${CMD_SECONDS:-20}
ulimit -n "$(ulimit -Hn)"
# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh

# up N: a fresh redis-server, N gateways on it, the device fleet; sets
# rport, gw (base URLs), gwpid, apikey.
up() {
	rport=$(free_port)
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
	local redis="redis://127.0.0.1:$rport" keys out owner
	keys=$(new_keys)
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

# load SCENARIO FLAGS...: the load tool against the first gateway, its JSON
# report in $out; the API key goes through the environment.
load() {
	local scenario=$1
	shift
	echo "$scenario $round: load average before $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	LINKGATE_API_KEY=$apikey "$work/linkgate" loadtest "$scenario" --target "${gw[0]}" --quiet --json "$out" "$@" >"$out.txt" 2>"$out.err"
	echo "$scenario $round: load average after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

for round in $(seq 1 "$ROUNDS"); do
	for mode in $MODES; do
		out="$work/$mode-$round.json"
		case $mode in
		idle)
			up 1
			settle=${SETTLE:-2s}
			load ws --connections "$IDLE" --link-count 100 --devices 10 --ramp 2000 --settle "$settle" \
				--duration $((IDLE / 2000 + ${settle%s} + 6))s
			down
			echo "idle $round: $(fig "$out" 'r["info"]["rss_per_session_kib"]') KiB/session, $(fig "$out" 'r["info"]["goroutines_per_session"]') goroutines/session, opened $(fig "$out" 'r["info"]["sessions_opened"]')" >&2
			echo "idle $(fig "$out" 'r["info"]["rss_per_session_kib"]') $(fig "$out" 'r["info"]["heap_per_session_kib"]') $(fig "$out" 'r["info"]["goroutines_per_session"]')" >>"$work/results"
			;;
		commands)
			up 1
			load ws --connections 100 --link-count 100 --devices 100 --command-rate 10 --duration "${CMD_SECONDS}s"
			down
			echo "commands $round: ack p50 $(fig "$out" 'r["metrics"]["command"]["p50"]') p99 $(fig "$out" 'r["metrics"]["command"]["p99"]') ms, echo p99 $(fig "$out" 'r["metrics"]["echo"]["p99"]') ms, acks $(fig "$out" 'r["counts"].get("ack ok", 0)')" >&2
			echo "commands $(fig "$out" 'r["metrics"]["command"]["p50"]') $(fig "$out" 'r["metrics"]["command"]["p99"]') $(fig "$out" 'r["metrics"]["echo"]["p50"]') $(fig "$out" 'r["metrics"]["echo"]["p99"]') $(fig "$out" 'r["counts"].get("ack ok", 0) / r["elapsed"]')" >>"$work/results"
			;;
		revoke | stress)
			links=$REVOKE_LINKS rate=$REVOKE_RATE
			if [ "$mode" = stress ]; then links=$STRESS_LINKS rate=0; fi
			up 2
			load revoke --instances "${gw[1]}" --connections "$REVOKE" --link-count "$links" --devices 10 --ramp 2000 --revoke-rate "$rate"
			down
			echo "$mode $round: close p50 $(fig "$out" 'r["metrics"]["revoke"]["p50"]') p99 $(fig "$out" 'r["metrics"]["revoke"]["p99"]') max $(fig "$out" 'r["metrics"]["revoke"]["max"]') ms, refuse p99 $(fig "$out" 'r["metrics"]["refuse"]["p99"]') ms, disable p99 $(fig "$out" 'r["metrics"]["disable"]["p99"]') ms; stages p50/p99 ms: feed $(fig "$out" 'r["info"].get("feed_lag_p50_ms")')/$(fig "$out" 'r["info"].get("feed_lag_p99_ms")') relink $(fig "$out" 'r["info"].get("relink_p50_ms")')/$(fig "$out" 'r["info"].get("relink_p99_ms")') close write $(fig "$out" 'r["info"].get("close_write_p50_ms")')/$(fig "$out" 'r["info"].get("close_write_p99_ms")'); counts $(fig "$out" 'r["counts"]')" >&2
			echo "$mode $(fig "$out" 'r["metrics"]["revoke"]["p50"]') $(fig "$out" 'r["metrics"]["revoke"]["p99"]') $(fig "$out" 'r["metrics"]["revoke"]["max"]') $(fig "$out" 'r["metrics"]["refuse"]["p50"]') $(fig "$out" 'r["metrics"]["refuse"]["p99"]') $(fig "$out" 'r["metrics"]["refuse"]["max"]') $(fig "$out" 'r["metrics"]["disable"]["p50"]') $(fig "$out" 'r["metrics"]["disable"]["p99"]') $(fig "$out" 'r["info"].get("feed_lag_p99_ms", -1)') $(fig "$out" 'r["info"].get("relink_p99_ms", -1)') $(fig "$out" 'r["info"].get("close_write_p99_ms", -1)') $(fig "$out" 'r["counts"].get("open after-disable", 0)')" >>"$work/results"
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
    "revoke": ["close p50 ms", "close p99 ms", "close max ms", "refuse p50 ms", "refuse p99 ms", "refuse max ms", "disable call p50 ms", "disable call p99 ms", "feed lag p99 ms", "relink p99 ms", "close write p99 ms", "opens after disable"],
}
names["stress"] = names["revoke"]
for mode, runs in rows.items():
    meds = [statistics.median(col) for col in zip(*runs)]
    print(mode + ": " + ", ".join(f"{n} {m:.2f}" for n, m in zip(names[mode], meds)))
    for r in runs:
        print("   raw: " + " ".join(f"{v:.2f}" for v in r))
EOF
