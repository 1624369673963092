// Package media carries cameras to browsers: one RTSP pull per camera per
// instance, its access units turned into fragmented MP4 once, and the same
// bytes fanned out to every viewer through a bounded queue each, with the
// last group of pictures kept so that a new viewer starts at once. It imports
// none of linkgate's other packages.
//
// # Use
//
//	m := media.NewManager(media.Config{Logger: log})
//	defer m.Close()
//	v, err := m.Watch(ctx, cameraID, media.Source{URL: "rtsp://user:pass@cam/stream"})
//	...
//	defer v.Close()
//	for msg := range v.Messages() {
//		// msg.Text: WebSocket text frame; msg.Binary: binary frame
//	}
//
// # The viewer's message stream
//
// This is the stream of GET /l/{token}/live, one message per WebSocket
// frame:
//
//  1. Text {"type":"codecs","mime":"video/mp4; codecs=\"avc1.64001f\""}: the
//     MIME type for MediaSource.addSourceBuffer. With audio:
//     codecs="avc1.64001f,mp4a.40.2" (AAC) or codecs="avc1.64001f,opus".
//     When the camera's audio cannot be carried (G.711, G.722, LPCM,
//     LATM-packed AAC), the audio is left out and the message says
//     "audio":"unsupported". H.265 is announced as
//     hvc1.<profile>.<compatibility>.<tier><level>.<constraints> (ISO/IEC
//     14496-15 annex E), for example hvc1.1.6.L93.B0, and its sample entry
//     is hvc1, which Safari requires.
//  2. Binary: the init segment (ftyp+moov). Track 1 is video at 90 kHz;
//     track 2, if any, is audio at its sample rate (48 kHz for Opus).
//  3. Binary: fragments (moof+mdat), one per video access unit, the first a
//     keyframe. A fragment carries one video sample and, in a second traf,
//     the audio samples received since the previous fragment; audio is never
//     sent alone. Decode times never go back for a camera, across upstream
//     reconnects too. A video sample's duration is an estimate (see below):
//     the next fragment's decode time is the real one, and samples overlap
//     a little. The mfhd sequence number counts the camera's fragments:
//     a viewer that joins sees it start above 1, and it jumps when the viewer
//     skipped.
//
// Later, at any point between fragments:
//
//   - Text {"type":"offline"} when the upstream fails (also when the first
//     connect fails) and {"type":"online"} when fragments flow again. A
//     viewer that joins while the camera is down gets offline at once.
//   - After a reconnect with the same parameters the fragments simply go on.
//     If the parameters changed (another resolution, profile, audio), a new
//     codecs message and init segment come first, right before a keyframe:
//     the page re-creates its SourceBuffer.
//
// A video access unit goes out as soon as it is complete, though its
// duration is known only when the next one arrives: it is given twice the
// longest of the camera's last four frame intervals, and the next fragment
// keeps its own decode time. Erring long matters: MSE takes a decode time
// more than twice the last frame's duration after it as a discontinuity and
// drops frames up to the next keyframe, so a camera that skips two or three
// frames must not look like one; a longer duration only makes frames
// overlap, which MSE takes. A pause longer than three recent intervals is
// shortened to that on the camera timeline (audio with it), so that a stalled camera
// plays on at once when it resumes. Audio waits for the next video fragment,
// at most a frame interval.
//
// Video is normalized once per camera: the current parameter sets (VPS, SPS,
// PPS) go in front of every keyframe, parameter sets sent in band replace
// the current ones, delimiters and filler are dropped, nothing goes out
// before the first keyframe, and after lost packets or undecodable data
// nothing goes out until the next keyframe. The timeline stays gapless for a camera: the next keyframe after such a gap
// (or after a reconnect) gets the decode time where the last fragment's
// estimated duration ended.
//
// The audio track is in an init segment only if the camera has sent audio in
// the last 2 s of video, so that a camera that announces audio and sends
// none still plays (a browser plays only what every track has buffered).
// When a camera announces audio and none has come by an upstream session's
// first keyframe, that one keyframe waits for the first audio or the next
// video access unit, whichever comes first: so the first init segment has
// the audio track whenever audio flows (no video-only start and new init
// segment at the next keyframe), and a camera whose audio never comes
// starts at most one frame interval later. No other frame waits.
//
// # LL-HLS, for browsers without Media Source Extensions
//
// [Manager.ServeHLS] answers a camera's Low-Latency HLS stream (gohlslib:
// index.m3u8, its media playlists, init files, segments and parts) from the
// same normalized access units and camera timeline as the fMP4 viewers, on
// the same upstream. The first request starts the camera's HLS output, it
// stops [Config.Linger] after the last one, and a change of the camera's
// tracks starts a new one. Memory is bounded by [HLSConfig] (segments kept,
// bytes per segment), and so is every request's wait: blocking playlist
// reloads (_HLS_msn, _HLS_part) and the preload-hinted part wait at most
// [HLSConfig.BlockTimeout], in the request's goroutine, never in gohlslib.
//
// # Slow viewers
//
// The camera goroutine never waits for a viewer. Each viewer's queue is
// bounded by [Config.QueueBytes]; a fragment that does not fit is dropped and
// the viewer skips everything up to the next keyframe that fits. Its own
// stream then has a gap in decode times (the player must jump it, as live
// players do). A viewer whose queue is still too full at 3 keyframes in a
// row is dropped: its Messages channel closes, [Viewer.Err] returns
// [ErrTooSlow] and [CameraStats].Dropped counts it. Control messages are
// never dropped; a new codecs message and init segment go with the first
// keyframe that fits.
//
// # Goroutines
//
// Each camera has one goroutine (camera.run) that owns its state: viewers,
// the upstream's on-demand life, the muxer and the cached group of pictures;
// Watch and Close talk to it over channels. The upstream runs in its own
// goroutine with the RTSP client (gortsplib), whose callbacks decode RTP
// into access units and send them to the camera goroutine. Each viewer has a
// goroutine that moves its queue into Messages.
//
// # Failures and bad input
//
// An upstream that cannot connect, or whose session ends, is retried with
// jittered exponential backoff between [Config.RetryMin] and
// [Config.RetryMax] while it has viewers; viewers stay attached. The
// upstream stops [Config.Linger] after its last viewer leaves. Camera data
// of any shape gives errors, counted in [CameraStats], never a panic: access
// units are bounded to 8 MiB and 64 NAL units, parameter sets to 4 KiB, and
// every new SPS must parse before it is used. As a last line, a panic of
// the codec libraries on camera data is recovered and costs that camera a
// resync (logged at error level), not the process.
//
// Source URLs carry credentials: they never reach a log or an error.
package media
