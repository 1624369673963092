#!/usr/bin/env bash
# Measures what camera viewers leave behind in the gateway (BENCHMARKS.md,
# "Camera viewers"): its RSS, heap, goroutines and the link's open session
# leases across VIEWERS viewers that come and go.
#
# The camera is the clip of bench-viewers.sh (720p25 H.264, 2 Mbit/s, IDR
# every 2 s), played over RTSP by loadtest/viewers -serve-clip. Each round
# starts a fresh plain gateway on a real redis-server; loadtest/viewers
# -churn then runs VIEWERS viewers, CONCURRENCY at a time, each from its own
# 127.x.y.z address: a session (POST /l/{token}/session), the stream socket,
# read until the first fragment, leave. The gateway is sampled before the
# first viewer, after every EVERY viewers (once those in flight have left
# and 1 s has passed) and every 5 s for 30 s after the last (the camera's
# upstream stops 10 s after its last viewer; the HTTP server's idle workers
# end 10 to 20 s after their last connection). The table gives medians over
# rounds.
#
# Needs ffmpeg and redis-server (apt-get install ffmpeg redis-server).
# Usage: loadtest/bench-churn.sh [ROUNDS=3 VIEWERS=10000 CONCURRENCY=20 EVERY=1000]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
VIEWERS=${VIEWERS:-10000}
CONCURRENCY=${CONCURRENCY:-20}
EVERY=${EVERY:-1000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); cport=$(free_port)

go build -o "$work/linkgate" ./cmd/linkgate
go build -o "$work/viewers" ./loadtest/viewers

ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 10 \
	-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
	-b:v 2M -maxrate 2M -bufsize 1M -x264-params aud=1:repeat-headers=1 -f h264 "$work/clip.h264"
"$work/viewers" -serve-clip "$work/clip.h264" -rtsp-addr "127.0.0.1:$cport" 2>"$work/camera.log" &
until grep -q serving "$work/camera.log"; do sleep 0.1; done

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done

keys="1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
apikey=$("$work/linkgate" owner create bench --redis "redis://127.0.0.1:$rport" | awk '/^owner api key:/ {print $4}')
api=(--server "http://127.0.0.1:$gport" --api-key "$apikey")
link=

for r in $(seq 1 "$ROUNDS"); do
	"$work/linkgate" serve --addr "127.0.0.1:$gport" --redis "redis://127.0.0.1:$rport" \
		--keys "$keys" --log-level warn >"$work/gw.out" 2>"$work/gw-$r.log" &
	gwpid=$!
	until curl -fs "http://127.0.0.1:$gport/readyz" >/dev/null; do sleep 0.1; done
	if [ -z "$link" ]; then
		# No --max-uses or --max-sessions: the link allows every viewer.
		camera=$("$work/linkgate" camera create --name Bench --url "rtsp://127.0.0.1:$cport/cam" --json "${api[@]}" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
		link=$("$work/linkgate" link create --device "$camera" --camera live --json "${api[@]}" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
	fi
	sleep 2
	"$work/viewers" -link "$link" -churn "$VIEWERS" -concurrency "$CONCURRENCY" -every "$EVERY" \
		-pid "$gwpid" -redis "127.0.0.1:$rport" -settle 30s | tee "$work/churn-$r" >&2
	kill "$gwpid"; wait "$gwpid" 2>/dev/null || true
	echo "round $r/$ROUNDS done" >&2
done

echo "go $(go env GOVERSION); $(nproc) cores; ROUNDS=$ROUNDS VIEWERS=$VIEWERS CONCURRENCY=$CONCURRENCY"
cat "$work"/churn-* | awk '
	function median(arr, n,    i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) {t = arr[i]; arr[i] = arr[j]; arr[j] = t}
		return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
	}
	$1 ~ /^(\+|[0-9])/ && NF == 7 {
		k = $1; if (!(k in n)) order[++m] = k; i = ++n[k]
		rss[k, i] = $2; heap[k, i] = $3; g[k, i] = $4; l[k, i] = $5; e[k, i] = $6
	}
	END {
		printf "%8s %12s %16s %12s %8s %8s %12s\n", "viewers", "RSS MiB", "heap inuse MiB", "goroutines", "leases", "errors", "RSS range"
		for (j = 1; j <= m; j++) {
			k = order[j]; lo = 1e18; hi = 0
			for (i = 1; i <= n[k]; i++) {
				a[i] = rss[k, i]; b[i] = heap[k, i]; c[i] = g[k, i]; d[i] = l[k, i]; f[i] = e[k, i]
				if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i]
			}
			printf "%8s %12.1f %16.1f %12d %8d %8d %5.1f-%-6.1f\n", k, median(a, n[k]) / 1024, median(b, n[k]) / 1024, median(c, n[k]), median(d, n[k]), median(f, n[k]), lo / 1024, hi / 1024
		}
	}'
grep -h '^error' "$work"/churn-* >&2 || true
