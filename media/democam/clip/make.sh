#!/bin/sh
# Regenerates demo.h264, the clip the demo camera serves in a loop: ffmpeg's
# testsrc2 pattern (colour bars, moving shapes, a running clock and a frame
# counter), 640x360 at 25 fps for 8 s, H.264 constrained baseline, an IDR
# every second with SPS and PPS before it, no B-frames and no SEI, written as
# an Annex-B elementary stream. The bytes depend on the x264 version; any
# clip with these properties works (democam checks them when it starts).
set -eu
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i testsrc2=size=640x360:rate=25:duration=8 \
	-c:v libx264 -profile:v baseline -preset slow -crf 32 -pix_fmt yuv420p \
	-g 25 -keyint_min 25 -sc_threshold 0 -bf 0 \
	-bsf:v filter_units=remove_types=6 \
	-f h264 demo.h264
ls -l demo.h264
