package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// socketProperty is what the ws scenario knows of the property it sets.
type socketProperty struct {
	path     string // node/prop
	datatype string
	format   string
}

// pickSocketProperty finds the property to set in a device's nodes (as the
// owner API and the session's view give them): want, or the first
// settable one; with control set, only one of those.
func pickSocketProperty(nodes json.RawMessage, want string, control []string) (socketProperty, error) {
	var ns []struct {
		ID         string `json:"id"`
		Properties []struct {
			ID       string `json:"id"`
			Datatype string `json:"datatype"`
			Format   string `json:"format"`
			Settable bool   `json:"settable"`
		} `json:"properties"`
	}
	if len(nodes) > 0 {
		if err := json.Unmarshal(nodes, &ns); err != nil {
			return socketProperty{}, fmt.Errorf("reading the device's nodes: %w", err)
		}
	}
	for _, n := range ns {
		for _, p := range n.Properties {
			path := n.ID + "/" + p.ID
			if want != "" && path != want {
				continue
			}
			if !p.Settable || (control != nil && !slices.Contains(control, path)) {
				if want != "" {
					return socketProperty{}, fmt.Errorf("Property: %s is not settable through the link", want)
				}
				continue
			}
			return socketProperty{path: path, datatype: p.Datatype, format: p.Format}, nil
		}
	}
	if want != "" {
		return socketProperty{}, fmt.Errorf("Property: the device has no %s", want)
	}
	return socketProperty{}, errors.New("Property: the link may control no settable property")
}

// socketValues makes valid values of a property, different from one k to the
// next as far as the property allows.
type socketValues struct{ p socketProperty }

func newSocketValues(p socketProperty) socketValues { return socketValues{p: p} }

// value returns the k-th value (k >= 0) as JSON.
func (g socketValues) value(k int) []byte {
	k = max(k, 0)
	switch g.p.datatype {
	case "boolean":
		return strconv.AppendBool(nil, k%2 == 0)
	case "integer", "float":
		lo, hi, step := 0.0, 999.0, 1.0
		parts := strings.Split(g.p.format, ":")
		if len(parts) >= 2 {
			a, err1 := strconv.ParseFloat(parts[0], 64)
			b, err2 := strconv.ParseFloat(parts[1], 64)
			if err1 == nil && err2 == nil && b >= a {
				lo, hi = a, b
			}
			if len(parts) == 3 {
				if s, err := strconv.ParseFloat(parts[2], 64); err == nil && s > 0 {
					step = s
				}
			}
		}
		n := int(math.Floor((hi-lo)/step)) + 1
		if n < 1 {
			n = 1
		}
		v := lo + float64(k%n)*step
		if g.p.datatype == "integer" {
			return strconv.AppendInt(nil, int64(math.Round(v)), 10)
		}
		return strconv.AppendFloat(nil, v, 'f', -1, 64)
	case "enum":
		vals := strings.Split(g.p.format, ",")
		return strconv.AppendQuote(nil, vals[k%len(vals)])
	case "color":
		if g.p.format == "hsv" {
			return strconv.AppendQuote(nil, fmt.Sprintf("%d,%d,%d", k%361, k/361%101, k/36461%101))
		}
		k %= 1 << 24
		return strconv.AppendQuote(nil, fmt.Sprintf("%d,%d,%d", k>>16&255, k>>8&255, k&255))
	}
	return strconv.AppendQuote(nil, "v"+strconv.Itoa(k))
}

// socketMemory is a target's memory as its /metrics tells it.
type socketMemory struct {
	rss        float64 // process_resident_memory_bytes
	heap       float64 // go_memstats_heap_inuse_bytes
	goroutines float64 // go_goroutines
}

// sampleSocketMemory reads the target's /metrics.
func sampleSocketMemory(ctx context.Context, base string) (socketMemory, error) {
	var m socketMemory
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_resident_memory_bytes":
			dst = &m.rss
		case "go_memstats_heap_inuse_bytes":
			dst = &m.heap
		case "go_goroutines":
			dst = &m.goroutines
		default:
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			*dst = v
		}
	}
	return m, sc.Err()
}
