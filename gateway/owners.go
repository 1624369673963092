package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens"
)

// Owners are tenants, created by the operator (linkgate owner create), never
// over the public API. Their API keys are stored as SHA-256 hashes: the keys
// carry 256 random bits, so a fast hash is enough and a leaked database does
// not leak keys.
//
//	lg:owner:{<id>}        JSON of Owner
//	lg:apikey:{<sha256>}   owner id
type Owners struct {
	rdb redis.UniversalClient
}

// Owner is a tenant.
type Owner struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// errUnauthorized: no key, or a key that is not an owner's.
var errUnauthorized = errors.New("unauthorized")

const apiKeyPrefix = "lgk_"

// NewOwners returns the owner registry on rdb.
func NewOwners(rdb redis.UniversalClient) *Owners { return &Owners{rdb: rdb} }

func ownerKey(id string) string { return "lg:owner:{" + id + "}" }

func apiKeyKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "lg:apikey:{" + hex.EncodeToString(sum[:]) + "}"
}

// Create registers an owner and returns its API key, which is shown once and
// not stored.
func (o *Owners) Create(ctx context.Context, name string) (Owner, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return Owner{}, "", &tokens.FieldError{Field: "name", Reason: "must be 1 to 100 characters"}
	}
	id := make([]byte, 12)
	secret := make([]byte, 32)
	_, _ = rand.Read(id)
	_, _ = rand.Read(secret)
	own := Owner{ID: hex.EncodeToString(id), Name: name, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	key := apiKeyPrefix + base64.RawURLEncoding.EncodeToString(secret)
	data, _ := json.Marshal(own)
	if err := o.rdb.Set(ctx, ownerKey(own.ID), data, 0).Err(); err != nil {
		return Owner{}, "", fmt.Errorf("%w: %v", tokens.ErrUnavailable, err)
	}
	if err := o.rdb.Set(ctx, apiKeyKey(key), own.ID, 0).Err(); err != nil {
		return Owner{}, "", fmt.Errorf("%w: %v", tokens.ErrUnavailable, err)
	}
	return own, key, nil
}

// Authenticate returns the id of the owner whose API key this is.
func (o *Owners) Authenticate(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, apiKeyPrefix) || len(key) != len(apiKeyPrefix)+43 {
		return "", errUnauthorized
	}
	id, err := o.rdb.Get(ctx, apiKeyKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", errUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", tokens.ErrUnavailable, err)
	}
	return id, nil
}
