// Package emulator models devices after the Homie convention (device → nodes
// → properties), the shape IoT platforms of this kind use, so that a bridge
// to real devices maps one to one. It validates device descriptions and the
// values a recipient sends, filters a description down to what a link may
// see, and keeps device records in Redis, scoped to their owner.
//
// On this model stand:
//   - the device bus (Bus): commands to devices, state from them and their
//     last known state, over Redis, shaped so that a bridge for real devices
//     (MQTT/Homie) maps one to one; the Bus type documents its keys and
//     messages;
//   - simulated devices (Sim, one goroutine owning each device's state) and
//     the Fleet that runs them for every device in the store;
//   - the per-instance Hub that fans device changes out to open pages;
//   - Session: what one open page may see and do, with the WebSocket
//     protocol's messages and close codes.
//
// Of linkgate's packages, this one imports only tokens.
package emulator
