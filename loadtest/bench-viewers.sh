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
# first fragment. The table gives medians over rounds.
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
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); cport=$(free_port)

go build -o "$work/linkgate" ./cmd/linkgate
go build -o "$work/viewers" ./loadtest/viewers

# The camera: 10 s of 720p25 at 2 Mbit/s, an access unit delimiter before
# each frame and SPS/PPS before each IDR, as loadtest/viewers -serve-clip wants.
ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 10 \
	-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
	-b:v 2M -maxrate 2M -bufsize 1M -x264-params aud=1:repeat-headers=1 -f h264 "$work/clip.h264"
"$work/viewers" -serve-clip "$work/clip.h264" -rtsp-addr "127.0.0.1:$cport" 2>"$work/camera.log" &
until grep -q serving "$work/camera.log"; do sleep 0.1; done

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done

keys="1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
apikey=$("$work/linkgate" owner create bench --redis "redis://127.0.0.1:$rport" | awk '/^owner api key:/ {print $4}')
"$work/linkgate" serve --addr "127.0.0.1:$gport" --redis "redis://127.0.0.1:$rport" \
	--keys "$keys" --log-level warn >"$work/gw.out" 2>"$work/gw.log" &
gwpid=$!
until curl -fs "http://127.0.0.1:$gport/readyz" >/dev/null; do sleep 0.1; done
api=(--server "http://127.0.0.1:$gport" --api-key "$apikey")
camera=$("$work/linkgate" camera create --name Bench --url "rtsp://127.0.0.1:$cport/cam" --json "${api[@]}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
link=$("$work/linkgate" link create --device "$camera" --camera live --json "${api[@]}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime+stime, in ticks
now() { date +%s.%N; }

# run ROUND N: appends "N cpu_pct viewers_cpu_pct ttff_p50 ttff_p99 fps_median".
run() {
	local n=$2 out="$work/v-$1-$2" vpid c0 v0 t0 c1 v1 t1
	"$work/viewers" -link "$link" -n "$n" -duration $((SETTLE + WINDOW + 30))s >"$out" 2>"$out.err" &
	vpid=$!
	until grep -q ready "$out.err"; do sleep 0.1; done
	sleep "$SETTLE"
	c0=$(cpu "$gwpid"); v0=$(cpu "$vpid"); t0=$(now)
	sleep "$WINDOW"
	c1=$(cpu "$gwpid"); v1=$(cpu "$vpid"); t1=$(now)
	"$work/viewers" -link "$link" -n "$JOINERS" -ramp 100ms -duration $((JOINERS / 10 + 3))s >"$out.join" 2>/dev/null
	kill "$vpid"; wait "$vpid" 2>/dev/null || true
	awk -v n="$n" -v c=$((c1 - c0)) -v v=$((v1 - v0)) -v t0="$t0" -v t1="$t1" -v tck="$tck" '
		/^ttff_ms/ {p50 = $3; p99 = $5}
		END {printf "%d %.2f %.2f %s %s\n", n, c / tck / (t1 - t0) * 100, v / tck / (t1 - t0) * 100, p50, p99}' "$out.join" >>"$work/results"
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
	{k = $1; if (!(k in n)) order[++m] = k; i = ++n[k]; c[k, i] = $2; v[k, i] = $3; p50[k, i] = $4; p99[k, i] = $5}
	END {
		printf "%8s %14s %16s %14s %14s %18s\n", "viewers", "gateway %core", "%core per 100", "TTFF p50 ms", "TTFF p99 ms", "viewers proc %core"
		for (j = 1; j <= m; j++) {
			k = order[j]
			for (i = 1; i <= n[k]; i++) {a[i] = c[k, i]; b[i] = v[k, i]; d[i] = p50[k, i]; e[i] = p99[k, i]}
			mc = median(a, n[k]); mv = median(b, n[k]); md = median(d, n[k]); me = median(e, n[k])
			printf "%8d %14.2f %16s %14.1f %14.1f %18.2f\n", k, mc, (k >= 100) ? sprintf("%.2f", mc * 100 / k) : "-", md, me, mv
		}
	}' "$work/results"
echo "raw: viewers gateway%core viewers%core ttff_p50 ttff_p99, one line per run"
cat "$work/results"
