package loadtest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

// Kind is the kind of link token an open presents.
type Kind string

// The kinds of token, and what the gateway answers each on GET /l/{token}
// (README, "A link's life"): valid 200, forged 404, expired 410, disabled
// 410. Past the gateway's per-IP limit of failed opens, every refused kind
// is answered 429 instead.
const (
	Valid    Kind = "valid"    // an active link inside its window
	Forged   Kind = "forged"   // a token of the right shape whose signature is wrong
	Expired  Kind = "expired"  // a link whose window has ended
	Disabled Kind = "disabled" // a link its owner disabled
)

// Kinds lists every kind, in the order reports use.
var Kinds = []Kind{Valid, Forged, Expired, Disabled}

// Status returns the status the gateway answers an open of a token of kind
// k with, below its rate limits.
func (k Kind) Status() int {
	switch k {
	case Valid:
		return http.StatusOK
	case Forged:
		return http.StatusNotFound
	case Expired, Disabled:
		return http.StatusGone
	}
	return 0
}

// Tokens are the link tokens a scenario presents, each as the token or as
// the whole link URL (http://host/l/{token}). An empty one is minted through
// the owner API when the scenario has an API key; Forged, when empty, is
// made from another token by changing its signature, so it has a real key
// id and costs the gateway a full HMAC check.
type Tokens struct {
	Valid    string
	Forged   string
	Expired  string
	Disabled string
}

// get returns the token of kind k.
func (t *Tokens) get(k Kind) *string {
	switch k {
	case Valid:
		return &t.Valid
	case Forged:
		return &t.Forged
	case Expired:
		return &t.Expired
	case Disabled:
		return &t.Disabled
	}
	return nil
}

// tokenOf returns the token of a token or a link URL.
func tokenOf(s string) string {
	if i := strings.LastIndex(s, "/l/"); i >= 0 {
		s = s[i+len("/l/"):]
	}
	return strings.TrimRight(s, "/")
}

// Forge returns token with its signature changed: the same length, the
// same alphabet and the same key id, so that the gateway decodes it and
// checks its HMAC before refusing it.
func Forge(token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(token) != tokens.TokenLen {
		return "", fmt.Errorf("not a link token: want %d URL-safe base64 characters", tokens.TokenLen)
	}
	raw[len(raw)-tokenMACSize] ^= 0xff // the first byte of the MAC
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// tokenMACSize is the size of a link token's MAC, its last bytes (see the
// layout in tokens/token.go).
const tokenMACSize = 16

// plug is the device the scenarios mint links to: a plug with a switch, as
// in the demo fleet. It is JSON because the loadtest package keeps to the
// owner API's wire types.
const plug = `{"name":"loadtest plug","type":"plug","nodes":[{"id":"switch","name":"Switch",` +
	`"properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]}`

// minted is what a scenario made through the owner API, to delete after.
type minted struct {
	api    *ownerapi.Client
	device string
	links  []string
}

// mint makes, through the owner API, a link of each kind in need that toks
// does not have, and fills toks in. Expired links are made with a window
// ending in an hour and then edited to have ended a minute ago: the API
// refuses to create a link that has already ended, but lets an owner
// expire one. The token keeps the window it was minted with; the gateway
// goes by the record.
func mint(ctx context.Context, api *ownerapi.Client, toks *Tokens, need []Kind) (*minted, error) {
	m := &minted{api: api}
	for _, k := range need {
		if k == Forged || *toks.get(k) != "" {
			continue
		}
		if m.device == "" {
			var d ownerapi.DeviceCreate
			if err := json.Unmarshal([]byte(plug), &d); err != nil {
				return m, err
			}
			dev, err := api.CreateDevice(ctx, d)
			if err != nil {
				return m, fmt.Errorf("creating a device: %w", err)
			}
			m.device = dev.ID
		}
		lc := ownerapi.LinkCreate{
			Device:      m.device,
			Name:        "loadtest " + string(k),
			Permissions: tokens.Permissions{Control: []string{"switch/on"}, View: []string{"switch/on"}},
		}
		if k == Expired {
			end := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			lc.Window = &ownerapi.Window{End: &end}
		}
		l, err := api.CreateLink(ctx, lc)
		if err != nil {
			return m, fmt.Errorf("creating the %s link: %w", k, err)
		}
		m.links = append(m.links, l.ID)
		switch k {
		case Expired:
			end := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
			if _, err := api.UpdateLink(ctx, l.ID, ownerapi.LinkPatch{Window: ownerapi.Some(ownerapi.Window{End: &end})}); err != nil {
				return m, fmt.Errorf("expiring the %s link: %w", k, err)
			}
		case Disabled:
			if _, err := api.DisableLink(ctx, l.ID); err != nil {
				return m, fmt.Errorf("disabling the %s link: %w", k, err)
			}
		}
		*toks.get(k) = l.Token
	}
	return m, nil
}

// remove deletes what mint made: the links, then the device.
func (m *minted) remove(ctx context.Context) error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, id := range m.links {
		if err := m.api.DeleteLink(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("deleting link %s: %w", id, err))
		}
	}
	m.links = nil
	if m.device != "" && len(errs) == 0 {
		if err := m.api.DeleteDevice(ctx, m.device); err != nil {
			errs = append(errs, fmt.Errorf("deleting device %s: %w", m.device, err))
		}
		m.device = ""
	}
	return errors.Join(errs...)
}

// linkSetup is the preparation the HTTP scenarios share: the target, the
// tokens (given, minted or forged), a warm link cache and the Redis count.
type linkSetup struct {
	target  httpTarget
	base    string // the target URL without a trailing slash
	toks    Tokens
	minted  *minted
	redis   *redisCounter
	timeout time.Duration
	workers int // the run's Connections
}

// prepare fills s in for cfg's target: it mints the links of the kinds in
// need through the owner API (if apiKey is set and toks lacks them), forges
// a token if needed, checks each token once with a GET (which also warms
// the gateway's link cache, so the run measures its steady state), and
// takes Redis's command counts last.
func (s *linkSetup) prepare(ctx context.Context, cfg Config, toks Tokens, need []Kind, apiKey, redisURL string) error {
	t, err := parseTarget(cfg.Target)
	if err != nil {
		return err
	}
	s.target, s.base, s.workers = t, strings.TrimRight(cfg.Target, "/"), cfg.Connections
	for _, k := range Kinds {
		p := toks.get(k)
		*p = tokenOf(*p)
	}
	httpc := &http.Client{Timeout: s.timeout}
	if apiKey != "" {
		api := &ownerapi.Client{BaseURL: s.base, APIKey: apiKey, HTTP: httpc}
		toMint := need
		if slices.Contains(need, Forged) && toks.Forged == "" && cmp.Or(toks.Valid, toks.Expired, toks.Disabled) == "" {
			toMint = append(slices.Clone(need), Valid) // a link to forge from
		}
		s.minted, err = mint(ctx, api, &toks, toMint)
		if err != nil {
			s.finish(context.WithoutCancel(ctx), nil)
			return err
		}
	}
	for _, k := range need {
		if k != Forged || toks.Forged != "" {
			continue
		}
		from := cmp.Or(toks.Valid, toks.Expired, toks.Disabled)
		if from == "" {
			return errors.New("Tokens.Forged: no token to forge from: give a valid, expired or disabled token, or an API key")
		}
		if toks.Forged, err = Forge(from); err != nil {
			return fmt.Errorf("Tokens: forging from %.8s...: %w", from, err)
		}
	}
	for _, k := range need {
		if *toks.get(k) == "" {
			s.finish(context.WithoutCancel(ctx), nil)
			return fmt.Errorf("Tokens.%s: no %s token: give one, or an API key to mint it", strings.ToUpper(string(k[:1]))+string(k[1:]), k)
		}
		if err := s.check(ctx, httpc, k, *toks.get(k)); err != nil {
			s.finish(context.WithoutCancel(ctx), nil)
			return err
		}
	}
	s.toks = toks
	if redisURL != "" {
		if s.redis, err = newRedisCounter(ctx, redisURL); err != nil {
			s.finish(context.WithoutCancel(ctx), nil)
			return err
		}
	}
	return nil
}

// check opens token once and wants kind's status (or 429 for a refused
// kind: the target's limit of failed opens may already be spent).
func (s *linkSetup) check(ctx context.Context, c *http.Client, k Kind, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/l/"+token, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("checking the %s token: %w", k, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != k.Status() && (k == Valid || resp.StatusCode != http.StatusTooManyRequests) {
		return fmt.Errorf("checking the %s token: GET /l/%.8s... answered %d, want %d", k, token, resp.StatusCode, k.Status())
	}
	return nil
}

// finish reports the Redis calls made since prepare into r (if r is not
// nil) and deletes what prepare minted.
func (s *linkSetup) finish(ctx context.Context, r *Report) error {
	var errs []error
	if s.redis != nil {
		if r != nil {
			errs = append(errs, s.redis.report(ctx, r))
		}
		errs = append(errs, s.redis.close())
		s.redis = nil
	}
	errs = append(errs, s.minted.remove(ctx))
	s.minted = nil
	return errors.Join(errs...)
}
