#!/usr/bin/env bash
# Measures the gateway's CPU for many viewers of one camera, and the time to
# first fragment for viewers joining a running camera (BENCHMARKS.md,
# "Camera viewers").
#
# The camera is a 1280x720 25 fps H.264 clip of about 2 Mbit/s (ffmpeg's
# testsrc2, IDR every 2 s, no B-frames), played in a loop over RTSP by
# loadtest/viewers -serve-clip. A plain gateway (no demo data) pulls it once
# over TCP; loadtest/viewers opens the viewers as the live page does.
#
# For each round and each N in VIEWERS: N viewers connect; once every one has
# had its first fragment and SETTLE has passed, the gateway's CPU time
# (utime+stime from /proc/PID/stat) is sampled over WINDOW seconds; then
# JOINERS more viewers join one by one while the N watch, for the time to
# first fragment. Over the same WINDOW, the gateway's histogram
# linkgate_camera_added_latency_seconds (from the first RTP packet of an
# access unit read to the return of the WebSocket write of its fragment, per
# viewer) is read from /metrics at both ends; its p50 and p99 are
# interpolated linearly within the bucket they fall in (as Prometheus'
# histogram_quantile does), and the bucket of the p99 is given too; so for
# linkgate_camera_send_latency_seconds, the part of it after the fragment is
# made (the muxer sends each frame as soon as it is complete).
# The 1-minute load average at the window's end is kept, since the machine
# may be shared. The table gives medians over rounds.
#
# Needs ffmpeg and redis-server (apt-get install ffmpeg redis-server).
# Usage: loadtest/bench-viewers.sh [ROUNDS=3 VIEWERS="1 100 300" WINDOW=20 SETTLE=3 JOINERS=20]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
VIEWERS=${VIEWERS:-1 100 300}
WINDOW=${WINDOW:-20}
SETTLE=${SETTLE:-3}
JOINERS=${JOINERS:-20}

# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh
rport=$(free_port); gport=$(free_port); cport=$(free_port)

start_clip_camera "$cport"

start_redis "$rport"

keys=$(new_keys)
apikey=$(owner_key "$rport")
start_gateway "$gport" "$rport" "$keys" "$work/gw.log"
api=(--server "http://127.0.0.1:$gport" --api-key "$apikey")
link=$(camera_link "$cport" "${api[@]}")

tck=$(getconf CLK_TCK)
scrape() { curl -fs "http://127.0.0.1:$gport/metrics" | grep -E '^linkgate_camera_(added|send)_latency_seconds_bucket' >"$1"; }
# latency BEFORE AFTER NAME: "p50_ms p99_ms p99_bucket_ms count" of the
# observations of histogram NAME between two scrapes, interpolated within
# buckets.
latency() {
	python3 - "$1" "$2" "$3" <<'PY'
import re, sys
def read(path):
    b = {}
    for line in open(path):
        if not line.startswith(sys.argv[3] + "_bucket"):
            continue
        m = re.search(r'le="([^"]+)"\} (\S+)', line)
        b[float(m.group(1))] = float(m.group(2))
    return b
before, after = read(sys.argv[1]), read(sys.argv[2])
les = sorted(after)
cum = [after[le] - before.get(le, 0) for le in les]
total = cum[-1]
def q(p):
    rank, lo, prev = p * total, 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= rank:
            if le == float("inf"):
                return lo * 1e3, "%g-inf" % (lo * 1e3)
            return (lo + (le - lo) * (rank - prev) / max(c - prev, 1)) * 1e3, "%g-%g" % (lo * 1e3, le * 1e3)
        lo, prev = le, c
p50, _ = q(.5)
p99, bucket = q(.99)
print("%.2f %.2f %s %d" % (p50, p99, bucket, total))
PY
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime+stime, in ticks
now() { date +%s.%N; }

# run ROUND N: appends "N cpu_pct viewers_cpu_pct ttff_p50 ttff_p99
# added_p50 added_p99 added_p99_bucket added_count send_p50 send_p99
# send_p99_bucket send_count loadavg".
run() {
	local n=$2 out="$work/v-$1-$2" vpid c0 v0 t0 c1 v1 t1
	"$work/viewers" -link "$link" -n "$n" -duration $((SETTLE + WINDOW + 30))s >"$out" 2>"$out.err" &
	vpid=$!
	until grep -q ready "$out.err"; do sleep 0.1; done
	sleep "$SETTLE"
	scrape "$out.m0"
	c0=$(cpu "$gwpid"); v0=$(cpu "$vpid"); t0=$(now)
	sleep "$WINDOW"
	c1=$(cpu "$gwpid"); v1=$(cpu "$vpid"); t1=$(now)
	scrape "$out.m1"
	lat="$(latency "$out.m0" "$out.m1" linkgate_camera_added_latency_seconds) $(latency "$out.m0" "$out.m1" linkgate_camera_send_latency_seconds) $(cut -d' ' -f1 /proc/loadavg)"
	"$work/viewers" -link "$link" -n "$JOINERS" -ramp 100ms -duration $((JOINERS / 10 + 3))s >"$out.join" 2>/dev/null
	kill "$vpid"; wait "$vpid" 2>/dev/null || true
	awk -v n="$n" -v c=$((c1 - c0)) -v v=$((v1 - v0)) -v t0="$t0" -v t1="$t1" -v tck="$tck" -v lat="$lat" '
		/^ttff_ms/ {p50 = $3; p99 = $5}
		END {printf "%d %.2f %.2f %s %s %s\n", n, c / tck / (t1 - t0) * 100, v / tck / (t1 - t0) * 100, p50, p99, lat}' "$out.join" >>"$work/results"
	grep -hE '^(ttff|per viewer)' "$out" | sed 's/^/  main batch: /' >&2
	grep -h '^error' "$out" "$out.join" >&2 || true
}

sleep 6 # let the camera's upstream linger out between runs
for r in $(seq 1 "$ROUNDS"); do
	for n in $VIEWERS; do
		run "$r" "$n"
		echo "round $r/$ROUNDS N=$n: $(tail -1 "$work/results")" >&2
		sleep 6
	done
done

echo "go $(go env GOVERSION); $(nproc) cores; ROUNDS=$ROUNDS WINDOW=${WINDOW}s JOINERS=$JOINERS; clip $(stat -c %s "$work/clip.h264") bytes / 10 s"
awk '
	function median(arr, n,    i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) {t = arr[i]; arr[i] = arr[j]; arr[j] = t}
		return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
	}
	{
		k = $1; if (!(k in n)) order[++m] = k; i = ++n[k]; c[k, i] = $2; v[k, i] = $3; p50[k, i] = $4; p99[k, i] = $5
		l50[k, i] = $6; l99[k, i] = $7; if (index(" " lb[k] " ", " " $8 " ") == 0) lb[k] = lb[k] (lb[k] == "" ? "" : ",") $8
		s50[k, i] = $10; s99[k, i] = $11; if (index(" " sb[k] " ", " " $12 " ") == 0) sb[k] = sb[k] (sb[k] == "" ? "" : ",") $12
	}
	END {
		printf "%8s %14s %16s %14s %14s %18s\n", "viewers", "gateway %core", "%core per 100", "TTFF p50 ms", "TTFF p99 ms", "viewers proc %core"
		for (j = 1; j <= m; j++) {
			k = order[j]
			for (i = 1; i <= n[k]; i++) {a[i] = c[k, i]; b[i] = v[k, i]; d[i] = p50[k, i]; e[i] = p99[k, i]}
			mc = median(a, n[k]); mv = median(b, n[k]); md = median(d, n[k]); me = median(e, n[k])
			printf "%8d %14.2f %16s %14.1f %14.1f %18.2f\n", k, mc, (k >= 100) ? sprintf("%.2f", mc * 100 / k) : "-", md, me, mv
		}
		printf "\nadded latency, first RTP packet in to WebSocket write returned (p50/p99 interpolated in buckets)\n"
		printf "%8s %14s %14s %18s %14s %14s %18s\n", "viewers", "added p50 ms", "added p99 ms", "p99 buckets ms", "send p50 ms", "send p99 ms", "p99 buckets ms"
		for (j = 1; j <= m; j++) {
			k = order[j]
			for (i = 1; i <= n[k]; i++) {a[i] = l50[k, i]; b[i] = l99[k, i]; d[i] = s50[k, i]; e[i] = s99[k, i]}
			printf "%8d %14.2f %14.2f %18s %14.2f %14.2f %18s\n", k, median(a, n[k]), median(b, n[k]), lb[k], median(d, n[k]), median(e, n[k]), sb[k]
		}
	}' "$work/results"
echo "raw: viewers gateway%core viewers%core ttff_p50 ttff_p99 added_p50 added_p99 added_p99_bucket added_count send_p50 send_p99 send_p99_bucket send_count loadavg1, one line per run"
cat "$work/results"
