package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// numRange is a parsed integer or float format.
type numRange struct {
	min, max       float64 // ±Inf when unbounded
	step           float64 // 0 when none
	hasMin, hasMax bool
}

// parseRange parses "", "min:max" or "min:max:step", where min and max may
// be empty.
func parseRange(s string) (numRange, error) {
	r := numRange{min: math.Inf(-1), max: math.Inf(1)}
	if s == "" {
		return r, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return r, errors.New(`want "min:max" or "min:max:step"`)
	}
	var err error
	if parts[0] != "" {
		if r.min, err = parseFinite(parts[0]); err != nil {
			return r, fmt.Errorf("min: %w", err)
		}
		r.hasMin = true
	}
	if parts[1] != "" {
		if r.max, err = parseFinite(parts[1]); err != nil {
			return r, fmt.Errorf("max: %w", err)
		}
		r.hasMax = true
	}
	if r.min > r.max {
		return r, errors.New("min is greater than max")
	}
	if len(parts) == 3 {
		if r.step, err = parseFinite(parts[2]); err != nil {
			return r, fmt.Errorf("step: %w", err)
		}
		if r.step <= 0 {
			return r, errors.New("step must be greater than 0")
		}
	}
	return r, nil
}

func parseFinite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return f, nil
}

// checkEnum checks an enum format: one or more distinct, non-empty values
// separated by commas, without surrounding spaces.
func checkEnum(s string) error {
	if s == "" {
		return errors.New(`required for an enum: the values, as "a,b,c"`)
	}
	var seen []string
	for v := range strings.SplitSeq(s, ",") {
		switch {
		case v == "":
			return errors.New("empty value")
		case strings.TrimSpace(v) != v:
			return fmt.Errorf("value %q has surrounding spaces", v)
		}
		for _, prev := range seen {
			if prev == v {
				return fmt.Errorf("duplicate value %q", v)
			}
		}
		seen = append(seen, v)
	}
	return nil
}

// CodeInvalidValue is the code of every ValueError, as sent to a recipient
// in a failed "ack".
const CodeInvalidValue = "invalid-value"

// Causes of a ValueError, for errors.Is.
var (
	// ErrValueType: the value has the wrong type or shape, such as a string
	// for a boolean, 2.5 for an integer or "red" for a color.
	ErrValueType = errors.New("value of the wrong type")
	// ErrValueRange: the value has the right type but is not allowed: out of
	// the property's range, not on its step, not one of its enum values, a
	// color component out of range, or a string too long.
	ErrValueRange = errors.New("value not allowed")
)

// ValueError says why a value does not fit a property. It wraps
// ErrValueType or ErrValueRange.
type ValueError struct {
	Property string // the property's id
	Code     string // CodeInvalidValue
	Reason   string
	Err      error // ErrValueType or ErrValueRange
}

func (e *ValueError) Error() string { return fmt.Sprintf("%s: %s", e.Property, e.Reason) }

func (e *ValueError) Unwrap() error { return e.Err }

func (p Property) valueError(cause error, format string, args ...any) *ValueError {
	return &ValueError{Property: p.ID, Code: CodeInvalidValue, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// CheckValue reports whether v may be set on the property. v is a value as
// encoding/json decodes it into an any: bool, float64 (or json.Number) and
// string; Go integers are accepted too. It returns nil or a *ValueError.
//
// A boolean takes a bool; an integer a whole number, a float any finite
// number, both within the format's range and on its step; an enum one of
// its values; a color "r,g,b" (0-255 each) or "#rrggbb" for rgb, "h,s,v"
// (0-360, 0-100, 0-100) for hsv; a string at most 256 bytes of UTF-8.
func (p Property) CheckValue(v any) error {
	switch p.Datatype {
	case DatatypeBoolean:
		if _, ok := v.(bool); !ok {
			return p.valueError(ErrValueType, "want true or false")
		}
		return nil
	case DatatypeInteger, DatatypeFloat:
		return p.checkNumber(v)
	case DatatypeEnum:
		s, ok := v.(string)
		if !ok {
			return p.valueError(ErrValueType, "want one of %s", p.Format)
		}
		if p.Format != "" { // an empty enum allows nothing
			for e := range strings.SplitSeq(p.Format, ",") {
				if e == s {
					return nil
				}
			}
		}
		return p.valueError(ErrValueRange, "want one of %s", p.Format)
	case DatatypeColor:
		s, ok := v.(string)
		if !ok {
			return p.valueError(ErrValueType, "want a color string")
		}
		return p.checkColor(s)
	case DatatypeString:
		s, ok := v.(string)
		if !ok || !utf8.ValidString(s) {
			return p.valueError(ErrValueType, "want a string")
		}
		if len(s) > maxStringValue {
			return p.valueError(ErrValueRange, "at most %d bytes", maxStringValue)
		}
		return nil
	}
	return p.valueError(ErrValueType, "unknown datatype %q", p.Datatype)
}

func (p Property) checkNumber(v any) error {
	f, ok := toFloat(v)
	if !ok {
		return p.valueError(ErrValueType, "want a number")
	}
	if p.Datatype == DatatypeInteger {
		if f != math.Trunc(f) {
			return p.valueError(ErrValueType, "want a whole number")
		}
		if math.Abs(f) > maxExactInteger {
			return p.valueError(ErrValueRange, "want a whole number within ±2^53")
		}
	}
	r, err := parseRange(p.Format)
	if err != nil { // the device was not validated; refuse rather than guess
		return p.valueError(ErrValueRange, "the property's range is invalid")
	}
	if f < r.min || f > r.max {
		return p.valueError(ErrValueRange, "want a number in %s", p.Format)
	}
	if r.step > 0 {
		base := 0.0
		if r.hasMin {
			base = r.min
		}
		// Tolerate the rounding of decimal steps such as 0.1. Beyond 2^53
		// steps every float is a whole number of steps.
		q := (f - base) / r.step
		if math.Abs(q) < maxExactInteger && math.Abs(q-math.Round(q)) > 1e-9*math.Max(1, math.Abs(q)) {
			return p.valueError(ErrValueRange, "want a multiple of %s from %s", fmtFloat(r.step), fmtFloat(base))
		}
	}
	return nil
}

// toFloat returns v as a finite float64.
func toFloat(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsInf(f, 0) && !math.IsNaN(f)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (p Property) checkColor(s string) error {
	if p.Format == ColorHSV {
		return p.checkComponents(s, "h,s,v", [3]int{360, 100, 100})
	}
	if p.Format != "" && p.Format != ColorRGB {
		return p.valueError(ErrValueRange, "the property's color format is invalid")
	}
	if strings.HasPrefix(s, "#") {
		if len(s) != 7 {
			return p.valueError(ErrValueType, `want "r,g,b" or "#rrggbb"`)
		}
		for i := 1; i < len(s); i++ {
			if !isHex(s[i]) {
				return p.valueError(ErrValueType, `want "r,g,b" or "#rrggbb"`)
			}
		}
		return nil
	}
	return p.checkComponents(s, "r,g,b", [3]int{255, 255, 255})
}

// checkComponents checks three comma-separated whole numbers, each from 0
// to its maximum.
func (p Property) checkComponents(s, shape string, maxima [3]int) error {
	rest := s
	for i, limit := range maxima {
		c, tail, more := strings.Cut(rest, ",")
		if more != (i < 2) || c == "" || strings.TrimLeft(c, "0123456789") != "" {
			return p.valueError(ErrValueType, "want %q", shape)
		}
		// Digits only, so Atoi fails only on overflow.
		if n, err := strconv.Atoi(c); err != nil || n > limit {
			return p.valueError(ErrValueRange, "want %q with %s from 0 to %d", shape, shape[2*i:2*i+1], limit)
		}
		rest = tail
	}
	return nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
