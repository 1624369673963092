// Package emulator models devices after the Homie convention (device → nodes
// → properties), the shape IoT platforms of this kind use, so that a bridge
// to real devices maps one to one. It validates device descriptions and the
// values a recipient sends, filters a description down to what a link may
// see, and keeps device records in Redis, scoped to their owner.
//
// Simulated devices, the device bus over Redis and recipient sessions
// (permission filtering and command routing) come later and build on this
// model.
//
// Of linkgate's packages, this one imports only tokens.
package emulator
