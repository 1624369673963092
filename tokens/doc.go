// Package tokens holds what a share link is: the signed, URL-safe token a
// recipient carries, the link record the owner edits, the Redis store that is
// the source of truth for records, and the per-instance cache that the
// invalidation feed keeps fresh.
//
// The token is verified without touching Redis, cheapest check first: shape
// and length, decoding, key id, signature (constant time). Only a token that
// passes all of these costs a cache look-up, and only a cache miss costs one
// Redis read (collapsed across concurrent callers).
//
// This package imports none of linkgate's other packages.
package tokens
