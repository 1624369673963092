package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// TestOpenAPIMatchesResponses drives real requests through the gateway and
// validates each request and answer against the document the gateway
// serves, so the document cannot drift from the code.
func TestOpenAPIMatchesResponses(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t))
	o := newTenant(t, in, "owner")

	served := want(t, call(t, "GET", in.url+"/api/v1/openapi.json", "", nil), http.StatusOK)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(served.body)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("document invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: in.url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	check := func(method, path, key string, body any, status int) answer {
		t.Helper()
		a := call(t, method, in.url+path, key, body)
		if a.StatusCode != status {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.StatusCode, status, a.body)
		}
		validate(t, router, a, key)
		return a
	}

	plug := o.device(t, plugBody)
	check("POST", "/api/v1/devices", o.key, lightBody, http.StatusCreated)
	check("POST", "/api/v1/cameras", o.key, map[string]any{"name": "Cam", "rtsp": map[string]any{"url": "rtsp://u:p@192.0.2.1/s", "transport": "udp"}}, http.StatusCreated)
	check("GET", "/api/v1/devices?limit=2", o.key, nil, http.StatusOK)
	check("GET", "/api/v1/cameras", o.key, nil, http.StatusOK)
	check("GET", "/api/v1/devices/"+plug.ID, o.key, nil, http.StatusOK)
	check("PATCH", "/api/v1/devices/"+plug.ID, o.key, map[string]any{"name": "Plug 2"}, http.StatusOK)

	end := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var l ownerapi.Link
	check("POST", "/api/v1/links", o.key, map[string]any{
		"device": plug.ID, "name": "Guest",
		"permissions": map[string]any{"control": []string{"switch/on"}, "view": []string{"meter/power"}},
		"window":      map[string]any{"start": time.Now().Add(-time.Hour).UTC().Truncate(time.Second), "end": end},
		"schedule":    map[string]any{"timeZone": "Europe/Berlin", "slots": []any{map[string]any{"days": []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, "start": "00:00", "end": "24:00"}}},
		"maxUses":     10, "maxSessions": 2,
	}, http.StatusCreated).json(t, &l)
	check("GET", "/api/v1/links?limit=1", o.key, nil, http.StatusOK)
	check("GET", "/api/v1/links/"+l.ID, o.key, nil, http.StatusOK)
	check("PATCH", "/api/v1/links/"+l.ID, o.key, map[string]any{"name": "Renamed", "window": nil, "schedule": nil}, http.StatusOK)
	check("POST", "/l/"+l.Token+"/session", "", nil, http.StatusOK)
	check("GET", "/api/v1/links/"+l.ID+"/log", o.key, nil, http.StatusOK)
	check("POST", "/api/v1/links/"+l.ID+"/disable", o.key, nil, http.StatusOK)
	check("POST", "/l/"+l.Token+"/session", "", nil, http.StatusGone)
	check("POST", "/api/v1/links/"+l.ID+"/enable", o.key, nil, http.StatusOK)

	// Errors have the documented shape too.
	check("POST", "/api/v1/links", o.key, map[string]any{"device": plug.ID, "bogus": true}, http.StatusBadRequest)
	check("GET", "/api/v1/links/"+strings.Repeat("0", 32), o.key, nil, http.StatusNotFound)
	check("GET", "/api/v1/links", "lgk_bad", nil, http.StatusUnauthorized)
	check("DELETE", "/api/v1/devices/"+plug.ID, o.key, nil, http.StatusConflict)

	check("DELETE", "/api/v1/links/"+l.ID, o.key, nil, http.StatusNoContent)
	check("DELETE", "/api/v1/devices/"+plug.ID, o.key, nil, http.StatusNoContent)
	check("GET", "/healthz", "", nil, http.StatusOK)
	check("GET", "/readyz", "", nil, http.StatusOK)
}

// validate checks one exchange against the document. Requests that the
// test sends on purpose with bad bodies are not validated as requests.
func validate(t *testing.T, router routers.Router, a answer, key string) {
	t.Helper()
	req := a.Request.Clone(context.Background())
	var reqBody []byte
	if a.Request.GetBody != nil {
		rc, _ := a.Request.GetBody()
		reqBody, _ = io.ReadAll(rc)
	}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not in the document: %v", req.Method, req.URL.Path, err)
		return
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if a.StatusCode < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: request does not match the document: %v", req.Method, req.URL.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 a.StatusCode,
		Header:                 a.Header,
		Body:                   io.NopCloser(bytes.NewReader(a.body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s -> %d: answer does not match the document: %v\nbody: %.400s", req.Method, req.URL.Path, a.StatusCode, err, a.body)
	}
}
