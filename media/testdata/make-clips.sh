#!/bin/sh
# Regenerates the small test clips that media's tests stream through a real
# in-process RTSP server. The tests read the committed files, so running them
# needs no ffmpeg; run this script only to change the clips.
#
#   h264.h264         H.264 High, 320x240, 25 fps, 2 s, GOP 25, no B-frames
#   h264-small.h264   H.264 Main, 160x120, 25 fps, 2 s, GOP 25, 2 B-frames
#                     (other parameter sets and reordered frames)
#   h265.h265         H.265 Main, 320x240, 25 fps, 2 s, GOP 25, no B-frames
#   sine.aac          AAC-LC, 48 kHz mono, 2 s, ADTS
#
# Every video access unit starts with an access unit delimiter, which is how
# the test server splits the elementary stream into frames.
set -eu
cd "$(dirname "$0")"

ff="ffmpeg -hide_banner -loglevel error -y"

$ff -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 \
	-c:v libx264 -profile:v high -preset veryfast -b:v 150k -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 \
	-bsf:v h264_metadata=aud=insert -f h264 h264.h264

$ff -f lavfi -i testsrc2=size=160x120:rate=25 -t 2 \
	-c:v libx264 -profile:v main -preset veryfast -b:v 60k -g 25 -keyint_min 25 -sc_threshold 0 -bf 2 \
	-bsf:v h264_metadata=aud=insert -f h264 h264-small.h264

$ff -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 \
	-c:v libx265 -preset veryfast -b:v 150k -x265-params keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error \
	-bsf:v hevc_metadata=aud=insert -f hevc h265.h265

$ff -f lavfi -i sine=frequency=440:sample_rate=48000 -t 2 \
	-c:a aac -b:a 32k -ac 1 -f adts sine.aac
