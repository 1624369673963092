#!/usr/bin/env bash
# Measures link opens side by side in one run (BENCHMARKS.md), with the load
# tool (`linkgate loadtest opens|baseline`) and wrk:
#   bare     - the baseline server (`linkgate loadtest baseline --addr`, its
#              own process): the same page and headers, no link machinery
#   valid    - linkgate, a valid link (token check + local cache)
#   forged   - linkgate, a valid token with its signature changed
#   expired  - linkgate, a link whose window has ended
#   wrk-*    - wrk on the same bare and valid URLs, same connections
#   open-*   - the tool's open model at RATE (default: 60 % of the first
#              round's closed valid rate) on the same URLs
# Each round runs them all in turn; the tables give medians over rounds,
# ratios against bare, and the Redis commands each run caused (INFO
# commandstats before and after, from Redis itself; see loadtest/redis.go
# for what is left out). The tool mints its own links through the owner API
# before each run and deletes them after.
#
# Needs redis-server and wrk (apt-get install redis-server wrk). Other
# benchmarks on this machine take the same lock.
# Usage: flock /tmp/bench.lock loadtest/bench-open.sh
#        [ROUNDS=5 DURATION=6s CONNECTIONS=32 RATE=]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6s}
CONNECTIONS=${CONNECTIONS:-32}
RATE=${RATE:-}
# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh
rport=$(free_port); gport=$(free_port); bport=$(free_port)
start_redis "$rport"

# A plain gateway: no demo fleet or camera in the measured process. The
# owner is made the way an operator would; the tool mints the links.
apikey=$(owner_key "$rport")
start_gateway "$gport" "$rport" "$(new_keys)" "$work/gw.log"
"$work/linkgate" loadtest baseline --addr "127.0.0.1:$bport" >"$work/bare.log" 2>&1 &
barepid=$!
until curl -fs "http://127.0.0.1:$bport/l/x" >/dev/null; do sleep 0.1; done

gw="http://127.0.0.1:$gport"
bare="http://127.0.0.1:$bport"
export LINKGATE_API_KEY=$apikey
redis=(--redis "redis://127.0.0.1:$rport")
tool=("$work/linkgate" loadtest --connections "$CONNECTIONS" --duration "$DURATION" --quiet)

# A valid link for wrk, minted once (the tool mints its own per run).
cat >"$work/plug.json" <<'JSON'
{"nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]}
JSON
"$work/linkgate" device create --name Plug --type plug --file "$work/plug.json" --json --server "$gw" --api-key "$apikey" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' >"$work/device"
valid=$("$work/linkgate" link create --device "$(cat "$work/device")" --name wrk --control switch/on --json --server "$gw" --api-key "$apikey" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
curl -fs "$valid" >/dev/null # warm the cache

# cputicks PID: the process's user and system CPU so far, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# tool NAME SCENARIO ARGS...: one run of the tool; appends "round=R name
# key=value..." from its JSON report, with the CPU the server process
# (bare's or the gateway's) spent per request.
tool() {
	local name=$1 scenario=$2 pid=$gwpid before after
	shift 2
	[ "$scenario" = baseline ] && pid=$barepid
	before=$(cputicks "$pid")
	"${tool[0]}" "${tool[1]}" "$scenario" "${tool[@]:2}" --json "$work/report.json" "$@" >/dev/null
	after=$(cputicks "$pid")
	python3 - "$name" "$work/report.json" "$((after - before))" "$(getconf CLK_TCK)" "$round" >>"$work/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
lat, c, info = r["metrics"]["latency"], r["counts"], r.get("info", {})
n = lambda p: sum(v for k, v in c.items() if k.startswith(p))
ops = max(1, n("status "))
print(sys.argv[1], "round=%s rate=%s rps=%.0f p50=%.3f p99=%.3f late=%d dropped=%d unexpected=%d errors=%d limited=%d cpu=%.0f srv_us=%.2f%s" % (
    sys.argv[5], r.get("rate", 0), r["achieved"], lat["p50"], lat["p99"], r.get("late", 0), r.get("dropped", 0),
    n("unexpected "), n("error "), n("limited "), r["generator"]["cpu"], int(sys.argv[3]) / int(sys.argv[4]) * 1e6 / ops,
    " redis_per_1k=%.4f" % info["redis calls per 1000 ops"] if "redis calls per 1000 ops" in info else ""))
PY
}

# wrk NAME URL: one wrk run; appends "name rps=.. p50=.. p99=..".
wrk_run() {
	wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$2" | awk -v name="$1" '
		function ms(v,   unit) {unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
			return (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v}
		/Requests\/sec/ {rps = $2}
		$1 == "50%" {p50 = ms($2)}
		$1 == "99%" {p99 = ms($2)}
		/Non-2xx/ {bad = $NF}
		END {printf "%s rps=%s p50=%.3f p99=%.3f unexpected=%d\n", name, rps, p50, p99, bad}' >>"$work/results"
}

# closed NAME: the closed-model run of one target.
closed() {
	case $1 in
	bare) tool bare baseline --target "$bare" ;;
	*) tool "$1" opens --mix "$1" --target "$gw" "${redis[@]}" ;;
	esac
}

# The machine drifts (other virtual machines on the host): rounds take the
# targets in turn forwards and backwards, and each ratio is taken within
# its round, against that round's bare run.
for round in $(seq 1 "$ROUNDS"); do
	order="bare valid forged expired"
	[ $((round % 2)) = 0 ] && order="expired forged valid bare"
	for t in $order; do closed "$t"; done
	wrk_run wrk-bare "$bare/l/x"
	wrk_run wrk-valid "$valid"
	if [ -z "$RATE" ]; then
		RATE=$(awk '$1 == "valid" {for (i = 2; i <= NF; i++) if ($i ~ /^rps=/) {sub(/rps=/, "", $i); printf "%d", $i * 0.6}}' "$work/results")
	fi
	tool open-bare baseline --target "$bare" --model open --rate "$RATE"
	tool open-valid opens --mix valid --target "$gw" "${redis[@]}" --model open --rate "$RATE"
	echo "round $round/$ROUNDS done" >&2
done

echo "go $(go env GOVERSION); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); $(nproc) cores; ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS RATE=$RATE"
python3 - "$work/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, *kv = line.split()
    d = {}
    for f in kv:
        k, _, v = f.partition("=")
        try:
            d[k] = float(v)
        except ValueError:
            d[k] = v
    runs.setdefault(name, []).append(d)
med = lambda name, k: statistics.median(r[k] for r in runs[name])
total = lambda name, k: sum(r.get(k, 0) if isinstance(r.get(k, 0), float) else 0 for r in runs[name])
def redis(name):
    v = [r["redis_per_1k"] for r in runs[name] if isinstance(r.get("redis_per_1k"), float)]
    return "%.4f" % max(v) if v else "-"
def paired(name, k):
    """The round-by-round ratios of name's k to bare's, and their median."""
    bare = {r["round"]: r[k] for r in runs["bare"]}
    v = [r[k] / bare[r["round"]] for r in runs[name]]
    return statistics.median(v), v
print("\nthe load tool, closed model (medians; ratios: the median of each round's ratio to")
print("that round's bare run; server CPU: the answering process's, per request; Redis calls")
print("per 1,000 opens: the highest round)")
print("%-8s %8s %7s %8s %9s %10s %9s %14s %10s %8s %8s" % ("target", "req/s", "ratio", "p99 ms", "p99 ratio", "server us", "us ratio",
      "redis calls/1k", "unexpected", "limited", "tool CPU"))
for n in ("bare", "valid", "forged", "expired"):
    print("%-8s %8.0f %7.3f %8.3f %9.3f %10.2f %9.3f %14s %10d %8d %7.0f%%" % (n, med(n, "rps"), paired(n, "rps")[0], med(n, "p99"),
          paired(n, "p99")[0], med(n, "srv_us"), paired(n, "srv_us")[0], redis(n), total(n, "unexpected") + total(n, "errors"),
          total(n, "limited"), med(n, "cpu")))
print("\neach round's req/s ratio to bare")
for n in ("valid", "forged", "expired"):
    print("%-8s %s" % (n, " ".join("%.3f" % v for v in paired(n, "rps")[1])))
print("\nthe tool against wrk -t1, same URL, same connections (medians)")
print("%-8s %10s %10s %7s %12s %11s" % ("target", "tool req/s", "wrk req/s", "ratio", "tool p99 ms", "wrk p99 ms"))
for n in ("bare", "valid"):
    w = "wrk-" + n
    print("%-8s %10.0f %10.0f %7.3f %12.3f %11.3f" % (n, med(n, "rps"), med(w, "rps"), med(n, "rps") / med(w, "rps"), med(n, "p99"), med(w, "p99")))
print("\nopen model at a fixed rate (latency from the due time; medians)")
print("%-8s %8s %9s %8s %8s %6s %8s %13s %13s" % ("target", "rate", "achieved", "p50 ms", "p99 ms", "late", "dropped", "closed p99 ms", "wrk p99 ms"))
for n in ("bare", "valid"):
    o = "open-" + n
    print("%-8s %8.0f %9.0f %8.3f %8.3f %6.0f %8.0f %13.3f %13.3f" % (n, med(o, "rate"), med(o, "rps"), med(o, "p50"),
          med(o, "p99"), med(o, "late"), med(o, "dropped"), med(n, "p99"), med("wrk-" + n, "p99")))
PY
