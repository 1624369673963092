# bench-lib.sh: what the bench-*.sh scripts share. Source it from the
# repository root. It makes $work, a temporary directory removed on exit
# after every background job is killed, and builds linkgate into it.
# shellcheck shell=bash

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/linkgate" ./cmd/linkgate

# free_port: a loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# new_keys: a signing key ring of one fresh key, for --keys.
new_keys() { echo "1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }

# start_redis PORT: a redis-server without persistence; returns once it
# answers.
start_redis() {
	redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.1; done
}

# owner_key REDIS_PORT: a new owner's API key, made as an operator does.
owner_key() {
	"$work/linkgate" owner create bench --redis "redis://127.0.0.1:$1" | awk '/^owner api key:/ {print $4}'
}

# start_gateway PORT REDIS_PORT KEYS LOG: a plain gateway (no demo fleet or
# camera in the measured process), its stderr in LOG; sets gwpid and
# returns once it is ready.
start_gateway() {
	"$work/linkgate" serve --addr "127.0.0.1:$1" --redis "redis://127.0.0.1:$2" \
		--keys "$3" --log-level warn >"$work/gw.out" 2>"$4" &
	gwpid=$!
	until curl -fs "http://127.0.0.1:$1/readyz" >/dev/null; do sleep 0.1; done
}

# start_clip_camera PORT: the benchmarks' camera, rtsp://127.0.0.1:PORT/cam:
# 10 s of 720p25 H.264 at 2 Mbit/s (an access unit delimiter before each
# frame, SPS/PPS before each IDR, as loadtest/viewers -serve-clip wants),
# looped by loadtest/viewers -serve-clip, which it builds into $work.
start_clip_camera() {
	go build -o "$work/viewers" ./loadtest/viewers
	ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 10 \
		-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
		-b:v 2M -maxrate 2M -bufsize 1M -x264-params aud=1:repeat-headers=1 -f h264 "$work/clip.h264"
	"$work/viewers" -serve-clip "$work/clip.h264" -rtsp-addr "127.0.0.1:$1" 2>"$work/camera.log" &
	until grep -q serving "$work/camera.log"; do sleep 0.1; done
}

# camera_link PORT API...: registers the camera at PORT through the owner
# API (API: --server URL --api-key KEY) and prints a live link to it, with
# no --max-uses or --max-sessions, so it allows every viewer.
camera_link() {
	local port=$1 camera
	shift
	camera=$("$work/linkgate" camera create --name Bench --url "rtsp://127.0.0.1:$port/cam" --json "$@" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	"$work/linkgate" link create --device "$camera" --camera live --json "$@" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])'
}
