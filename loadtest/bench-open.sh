#!/usr/bin/env bash
# Measures link opens side by side in one run (BENCHMARKS.md):
#   bare   - loadtest/barefiber: the same page and headers, no link machinery
#   valid  - linkgate, a valid demo link (token check + local cache)
#   forged - linkgate, a token of the right shape with a bad signature
# Each round runs the three in turn with wrk; the table gives medians over
# rounds, ratios against bare, and the Redis commands each run caused
# (INFO commandstats before and after: the MGETs of the link cache).
#
# Needs redis-server and wrk (apt-get install redis-server wrk).
# Usage: loadtest/bench-open.sh [ROUNDS=5 DURATION=10s CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); bport=$(free_port)

go build -o "$work/linkgate" ./cmd/linkgate
go build -o "$work/barefiber" ./loadtest/barefiber

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done

# A plain gateway: no demo fleet or camera in the measured process. The
# owner, device and link are made the way an operator and an owner would.
keys="1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
apikey=$("$work/linkgate" owner create bench --redis "redis://127.0.0.1:$rport" | awk '/^owner api key:/ {print $4}')
"$work/linkgate" serve --addr "127.0.0.1:$gport" --redis "redis://127.0.0.1:$rport" \
	--keys "$keys" --log-level warn >"$work/gw.out" 2>"$work/gw.log" &
"$work/barefiber" --addr "127.0.0.1:$bport" 2>"$work/bare.log" &
until curl -fs "http://127.0.0.1:$gport/readyz" >/dev/null; do sleep 0.1; done
until curl -fs "http://127.0.0.1:$bport/l/x" >/dev/null; do sleep 0.1; done
api=(--server "http://127.0.0.1:$gport" --api-key "$apikey")
cat >"$work/plug.json" <<'JSON'
{"nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]}
JSON
device=$("$work/linkgate" device create --name Plug --type plug --file "$work/plug.json" --json "${api[@]}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$work/linkgate" link create --device "$device" --name bench --control switch/on --json "${api[@]}" |
	python3 -c 'import json,sys; print("link: " + json.load(sys.stdin)["url"])' >"$work/gw.out"

valid=$(awk '/^link:/ {print $2}' "$work/gw.out")
token=${valid##*/}
forged="http://127.0.0.1:$gport/l/${token:0:40}$(printf 'A%.0s' $(seq 1 $(( ${#token} - 40 ))))"
bare="http://127.0.0.1:$bport/l/$token"

# Redis reads an open can make: the link cache reads a record with one MGET
# (record and use count). The feed's XREADs run all along.
redis_calls() {
	redis-cli -p "$rport" info commandstats |
		awk -F'[:=,]' '$1 == "cmdstat_mget" {n += $3} END {print n+0}'
}

# run NAME URL: one wrk run; appends "name rps p99_ms redis_calls requests".
run() {
	local before after out
	before=$(redis_calls)
	out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
	after=$(redis_calls)
	echo "$out" | awk -v name="$1" -v calls=$((after - before)) '
		/Requests\/sec/ {rps = $2}
		/requests in/ {reqs = $1}
		$1 == "99%" {v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
			p99 = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v}
		END {printf "%s %s %.3f %d %d\n", name, rps, p99, calls, reqs}' >>"$work/results"
}

curl -fs "$valid" >/dev/null # warm the cache
for r in $(seq 1 "$ROUNDS"); do
	run bare "$bare"
	run valid "$valid"
	run forged "$forged"
	echo "round $r/$ROUNDS done" >&2
done

echo "$(wrk --version 2>&1 | head -1); go $(go env GOVERSION); $(nproc) cores; ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS"
awk '
	function median(arr, n,    i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) {t = arr[i]; arr[i] = arr[j]; arr[j] = t}
		return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
	}
	{n[$1]++; rps[$1, n[$1]] = $2; p99[$1, n[$1]] = $3; calls[$1] += $4; reqs[$1] += $5}
	END {
		for (k in n) {
			for (i = 1; i <= n[k]; i++) {a[i] = rps[k, i]; b[i] = p99[k, i]}
			mr[k] = median(a, n[k]); mp[k] = median(b, n[k])
		}
		printf "%-7s %12s %10s %10s %10s %16s\n", "target", "req/s (med)", "ratio", "p99 ms", "p99 ratio", "redis calls/1k"
		split("bare valid forged", order, " ")
		for (i = 1; i <= 3; i++) {
			k = order[i]
			printf "%-7s %12.0f %10.3f %10.3f %10.3f %16.4f\n", k, mr[k], mr[k] / mr["bare"], mp[k], mp[k] / mp["bare"], (k == "bare") ? 0 : calls[k] * 1000 / reqs[k]
		}
	}' "$work/results"
