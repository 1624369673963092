// Package media will carry cameras to browsers: one RTSP pull per camera per
// instance (gortsplib), access units turned into fragmented MP4 once
// (mediacommon) and fanned out to bounded viewer queues, with the last
// keyframe group kept so a new viewer starts at once.
//
// It is empty for now: camera records (an RTSP source on a device of type
// "camera") and camera links with their access levels already exist in the
// owner API; the live path is the next step. It imports none of linkgate's
// other packages.
package media
