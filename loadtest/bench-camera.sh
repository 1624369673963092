#!/usr/bin/env bash
# The camera figures of BENCHMARKS.md ("Camera viewers", "Measured by the
# load tool"), measured with `linkgate loadtest viewers`.
#
# The camera is a 1280x720 25 fps H.264 clip of about 2 Mbit/s (ffmpeg's
# testsrc2, IDR every 2 s, no B-frames), played in a loop over RTSP by
# loadtest/viewers -serve-clip. A plain gateway (no demo data) on a real
# redis-server pulls it once over TCP.
#
# For each round and each N in VIEWERS, under flock /tmp/bench.lock (other
# benchmarks share the machine):
#   1. linkgate loadtest viewers: N viewers (closed model) of one live link.
#      Once every one has had its first fragment and SETTLE has passed, the
#      gateway's /metrics is read at the start and the end of a WINDOW:
#      "server cpu %" (process_cpu_seconds_total: utime+stime) and "server
#      rss MiB", with the load tool's own CPU over the same window; the run
#      also counts stalls (gaps over 500 ms) and each viewer's bytes and
#      fragments a second.
#   2. After the window ("window measured" on its stderr), JOINERS more
#      viewers arrive at 10 a second (open model, each watching 2 s) while
#      the N watch: their time to first frame (socket dial to the first
#      fragment after the init segment) is the TTFF of joiners.
# The table gives medians over rounds; the raw lines follow it.
#
# Needs ffmpeg, redis-server, python3, flock (apt-get install ffmpeg
# redis-server util-linux).
# Usage: loadtest/bench-camera.sh [ROUNDS=3 VIEWERS="100 300" WINDOW=20 SETTLE=3 JOINERS=20]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
VIEWERS=${VIEWERS:-100 300}
WINDOW=${WINDOW:-20}
SETTLE=${SETTLE:-3}
JOINERS=${JOINERS:-20}
LOCK=${LOCK:-/tmp/bench.lock}

# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh
rport=$(free_port); gport=$(free_port); cport=$(free_port)

start_clip_camera "$cport"

start_redis "$rport"

keys=$(new_keys)
apikey=$(owner_key "$rport")
start_gateway "$gport" "$rport" "$keys" "$work/gw.log"
target="http://127.0.0.1:$gport"
api=(--server "$target" --api-key "$apikey")
# One camera and link for every run, so that every run finds the same
# upstream; the scenario could also mint its own (--rtsp with an API key).
link=$(camera_link "$cport" "${api[@]}")

lt=("$work/linkgate" loadtest viewers --target "$target" --link "$link" --quiet)

# run ROUND N: appends one line to results (see the header printed below).
run() {
	local n=$2 out="$work/r$1-n$2" mpid lock
	exec {lock}>"$LOCK"
	flock "$lock"
	"${lt[@]}" --connections "$n" --ramp 5ms --settle "${SETTLE}s" --window "${WINDOW}s" \
		--duration $((SETTLE + WINDOW + JOINERS / 10 + 20))s --json "$out.main.json" >"$out.main.txt" 2>"$out.main.err" &
	mpid=$!
	until grep -qs 'window measured' "$out.main.err"; do
		kill -0 "$mpid" 2>/dev/null || { cat "$out.main.err" >&2; return 1; }
		sleep 0.1
	done
	"${lt[@]}" --model open --rate 10 --connections "$JOINERS" --hold 2s --duration $((JOINERS / 10))s \
		--no-server-metrics --json "$out.join.json" >"$out.join.txt" 2>"$out.join.err"
	wait "$mpid"
	flock -u "$lock"
	exec {lock}>&-
	python3 - "$n" "$out.main.json" "$out.join.json" >>"$work/results" <<'EOF'
import json, sys
n, main, join = int(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
info, c, jc = main["info"], main["counts"], join["counts"]
bad = sum(v for k, v in list(c.items()) + list(jc.items())
          if k.split(" ")[0] in ("close", "error", "session", "dial") or k == "event fragment-before-init")
print(n, "%.2f" % info["server cpu %"], "%.1f" % info["server rss MiB"],
      "%.1f" % join["metrics"]["ttff"]["p50"], "%.1f" % join["metrics"]["ttff"]["p99"],
      c.get("event stall", 0) + jc.get("event stall", 0),
      "%.0f" % (info["viewer bytes/s p50"] / 1000), "%.2f" % info["viewer fragments/s p50"],
      "%.2f" % info["generator cpu % (window)"], bad)
EOF
	echo "round $1/$ROUNDS N=$n: $(tail -1 "$work/results")" >&2
}

sleep 2
for r in $(seq 1 "$ROUNDS"); do
	for n in $VIEWERS; do
		run "$r" "$n"
		sleep 3
	done
done

echo "go $(go env GOVERSION); $(nproc) cores; ROUNDS=$ROUNDS SETTLE=${SETTLE}s WINDOW=${WINDOW}s JOINERS=$JOINERS; clip $(stat -c %s "$work/clip.h264") bytes / 10 s"
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(int(f[0]), []).append([float(x) for x in f[1:]])
print("%8s %12s %14s %10s %12s %12s %8s %14s %12s %14s %6s" % ("viewers", "server %core", "%core per 100", "rss MiB",
      "TTFF p50 ms", "TTFF p99 ms", "stalls", "kB/s/viewer", "frag/s", "loadtest %core", "bad"))
for n in sorted(rows):
    m = [statistics.median(col) for col in zip(*rows[n])]
    print("%8d %12.2f %14.2f %10.1f %12.1f %12.1f %8d %14.0f %12.2f %14.2f %6d" % (
        n, m[0], m[0] * 100 / n, m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]))
EOF
echo "raw: viewers server%core rssMiB ttff_p50 ttff_p99 stalls kB/s/viewer frag/s/viewer loadtest%core bad_counts"
cat "$work/results"
