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

# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh
rport=$(free_port); gport=$(free_port); cport=$(free_port)

start_clip_camera "$cport"

start_redis "$rport"

keys=$(new_keys)
apikey=$(owner_key "$rport")
api=(--server "http://127.0.0.1:$gport" --api-key "$apikey")
link=

for r in $(seq 1 "$ROUNDS"); do
	start_gateway "$gport" "$rport" "$keys" "$work/gw-$r.log"
	if [ -z "$link" ]; then
		link=$(camera_link "$cport" "${api[@]}")
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
