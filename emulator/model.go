package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/linkgate/linkgate/tokens"
)

// The model follows the Homie convention (https://homieiot.github.io/) one
// to one:
//
//	Homie                         here
//	homie/<device-id>             Device.ID
//	<device-id>/$name             Device.Name
//	<device-id>/<node-id>         Node (ID, $name = Name, $type = Type)
//	<node-id>/<property-id>       Property, addressed as "node/prop"
//	<property-id>/$name           Property.Name
//	<property-id>/$datatype       Property.Datatype
//	<property-id>/$unit           Property.Unit
//	<property-id>/$format         Property.Format
//	<property-id>/$settable       Property.Settable
//
// Owner, Type, RTSP, Version and the times are linkgate's own: who the
// device belongs to, what product it is, where a camera's stream comes from,
// and the record's bookkeeping.

// Datatype is a property's Homie $datatype.
type Datatype string

// Property datatypes.
const (
	DatatypeBoolean Datatype = "boolean"
	DatatypeInteger Datatype = "integer"
	DatatypeFloat   Datatype = "float"
	DatatypeEnum    Datatype = "enum"
	DatatypeColor   Datatype = "color"
	DatatypeString  Datatype = "string"
)

// Color formats.
const (
	ColorRGB = "rgb"
	ColorHSV = "hsv"
)

// TypeCamera is the device type that makes a device a camera.
const TypeCamera = "camera"

// RTSP transports.
const (
	TransportTCP = "tcp"
	TransportUDP = "udp"
)

// Limits of a description, enforced by Validate, and of a value, enforced
// by CheckValue.
const (
	maxNameLen      = 100     // runes, for device, node and property names
	maxTypeLen      = 40      // device type, [a-z0-9-]
	maxNodeTypeLen  = 64      // runes, a node's free-form $type
	maxIDLen        = 64      // node and property ids
	maxNodes        = 32      // per device
	maxProperties   = 64      // per node
	maxUnitLen      = 16      // runes
	maxFormatLen    = 1024    // runes, of a property's format
	maxStringValue  = 256     // bytes, of a string property's value
	maxExactInteger = 1 << 53 // larger integers do not survive JSON exactly
)

// Property is one value of a node: a Homie property.
type Property struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Datatype Datatype `json:"datatype"`
	Unit     string   `json:"unit,omitempty"`
	// Format narrows the values. For integer and float it is a range
	// "min:max" or "min:max:step" where min or max may be empty (unbounded);
	// with a step, a value must be min (or 0 without a min) plus a whole
	// number of steps. For enum it lists the values, "a,b,c": one or more,
	// distinct, non-empty, without surrounding spaces; it is required. For
	// color it is "rgb" (the default when empty) or "hsv". Other datatypes
	// take no format.
	Format   string `json:"format,omitempty"`
	Settable bool   `json:"settable"`
}

// Node is a part of a device that groups properties: a Homie node.
type Node struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Type       string     `json:"type,omitempty"`
	Properties []Property `json:"properties"`
}

// RTSPSource is where a camera's stream comes from. The URL may carry
// credentials: they stay on the server. String, Format and LogValue print
// the URL redacted; only encoding/json, for storage, sees it whole.
type RTSPSource struct {
	URL string `json:"url"`
	// Transport is "tcp" or "udp". It defaults to "tcp".
	Transport string `json:"transport,omitempty"`
}

// Device is a device's record: its description and the record's
// bookkeeping. A device of type "camera" is a camera; its nodes, if any,
// are the camera's controls (a light, a siren).
type Device struct {
	ID    string `json:"id"` // set by Store.Create
	Owner string `json:"owner"`
	Name  string `json:"name"`
	// Type is the free-form product type ("plug", "light", "thermostat",
	// ...); "camera" makes the device a camera.
	Type  string      `json:"type"`
	Nodes []Node      `json:"nodes,omitempty"`
	RTSP  *RTSPSource `json:"rtsp,omitempty"` // cameras only
	// Version counts the record's writes, from 1; Created and Updated are
	// the times of the first and the last. The store sets all three.
	Version int64     `json:"version"`
	Created time.Time `json:"createdAt"`
	Updated time.Time `json:"updatedAt"`
}

// Kind returns what a link to the device shares.
func (d *Device) Kind() tokens.Kind {
	if d.Type == TypeCamera {
		return tokens.KindCamera
	}
	return tokens.KindDevice
}

// Property returns the property at path, "node/prop".
func (d *Device) Property(path string) (Property, bool) {
	nodeID, propID, ok := strings.Cut(path, "/")
	if !ok {
		return Property{}, false
	}
	for _, n := range d.Nodes {
		if n.ID != nodeID {
			continue
		}
		for _, p := range n.Properties {
			if p.ID == propID {
				return p, true
			}
		}
	}
	return Property{}, false
}

// PropertyPaths returns the path, "node/prop", of every property, in the
// order of nodes and properties.
func (d *Device) PropertyPaths() []string {
	var paths []string
	for _, n := range d.Nodes {
		for _, p := range n.Properties {
			paths = append(paths, n.ID+"/"+p.ID)
		}
	}
	return paths
}

// Filter returns a deep copy of the device that holds only the properties
// for which visible returns true; nodes left without properties are
// dropped. The copy has no RTSP source and no owner: it is what a link's
// recipient may see.
func (d *Device) Filter(visible func(path string) bool) *Device {
	out := &Device{
		ID:      d.ID,
		Name:    d.Name,
		Type:    d.Type,
		Version: d.Version,
		Created: d.Created,
		Updated: d.Updated,
	}
	for _, n := range d.Nodes {
		var props []Property
		for _, p := range n.Properties {
			if visible(n.ID + "/" + p.ID) {
				props = append(props, p) // Property holds no references
			}
		}
		if len(props) > 0 {
			out.Nodes = append(out.Nodes, Node{ID: n.ID, Name: n.Name, Type: n.Type, Properties: props})
		}
	}
	return out
}

// String describes the device for people; it never shows RTSP credentials.
// It and LogValue have value receivers so that a Device value, not only a
// pointer, is printed and logged through them: a log handler would
// otherwise encode the struct as JSON, URL and all.
func (d Device) String() string {
	id := d.ID
	if id == "" {
		id = "(new)"
	}
	return fmt.Sprintf("%s %s %q", d.Type, id, d.Name)
}

// LogValue describes the device for logs; the RTSP URL is redacted.
func (d Device) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("id", d.ID),
		slog.String("owner", d.Owner),
		slog.String("type", d.Type),
		slog.String("name", d.Name),
		slog.Int64("version", d.Version),
	}
	if d.RTSP != nil {
		attrs = append(attrs, slog.Attr{Key: "rtsp", Value: d.RTSP.LogValue()})
	}
	return slog.GroupValue(attrs...)
}

// Validate checks a device description and returns a *tokens.FieldError
// naming the first bad field, such as "nodes[1].properties[0].format".
//
// The rules: the name has 1 to 100 characters and no control characters;
// the type has 1 to 40 characters of [a-z0-9-]. Node and property ids are
// Homie topic ids (lowercase letters and digits in groups joined by single
// hyphens, at most 64 characters), unique within their parent; node and
// property names follow the device name's rules; a node's type is optional,
// at most 64 characters. A device has at most 32 nodes and a node at most 64
// properties. A property's datatype is known, its format fits the datatype
// (see Property.Format) and has at most 1024 characters, and its unit has
// at most 16.
//
// A camera has an RTSP source (rtsp:// or rtsps:// URL with a host,
// transport "", "tcp" or "udp") and any number of nodes; any other device
// has no RTSP source and at least one node.
//
// Validate does not look at the id, owner, version or times: the store
// sets those. Reasons never quote the RTSP URL.
func (d *Device) Validate() error {
	if err := checkName("name", d.Name); err != nil {
		return err
	}
	if err := checkType(d.Type); err != nil {
		return err
	}
	if d.Type == TypeCamera {
		if d.RTSP == nil {
			return &tokens.FieldError{Field: "rtsp", Reason: "required for a camera"}
		}
		if err := d.RTSP.validate(); err != nil {
			return err
		}
	} else {
		if d.RTSP != nil {
			return &tokens.FieldError{Field: "rtsp", Reason: `only a device of type "camera" has an RTSP source`}
		}
		if len(d.Nodes) == 0 {
			return &tokens.FieldError{Field: "nodes", Reason: "at least one node is required"}
		}
	}
	if len(d.Nodes) > maxNodes {
		return &tokens.FieldError{Field: "nodes", Reason: fmt.Sprintf("at most %d nodes", maxNodes)}
	}
	for i := range d.Nodes {
		n := &d.Nodes[i]
		field := fmt.Sprintf("nodes[%d]", i)
		if err := n.validate(field); err != nil {
			return err
		}
		for _, prev := range d.Nodes[:i] {
			if prev.ID == n.ID {
				return &tokens.FieldError{Field: field + ".id", Reason: fmt.Sprintf("duplicate node id %q", n.ID)}
			}
		}
	}
	return nil
}

func (n *Node) validate(field string) error {
	if err := checkID(field+".id", n.ID); err != nil {
		return err
	}
	if err := checkName(field+".name", n.Name); err != nil {
		return err
	}
	if n.Type != "" {
		if err := checkText(field+".type", n.Type, maxNodeTypeLen); err != nil {
			return err
		}
	}
	if len(n.Properties) == 0 {
		return &tokens.FieldError{Field: field + ".properties", Reason: "at least one property is required"}
	}
	if len(n.Properties) > maxProperties {
		return &tokens.FieldError{Field: field + ".properties", Reason: fmt.Sprintf("at most %d properties", maxProperties)}
	}
	for i := range n.Properties {
		p := &n.Properties[i]
		pf := fmt.Sprintf("%s.properties[%d]", field, i)
		if err := p.validate(pf); err != nil {
			return err
		}
		for _, prev := range n.Properties[:i] {
			if prev.ID == p.ID {
				return &tokens.FieldError{Field: pf + ".id", Reason: fmt.Sprintf("duplicate property id %q", p.ID)}
			}
		}
	}
	return nil
}

func (p *Property) validate(field string) error {
	if err := checkID(field+".id", p.ID); err != nil {
		return err
	}
	if err := checkName(field+".name", p.Name); err != nil {
		return err
	}
	if p.Unit != "" {
		if err := checkText(field+".unit", p.Unit, maxUnitLen); err != nil {
			return err
		}
	}
	if err := checkText(field+".format", p.Format, maxFormatLen); err != nil {
		return err
	}
	var err error
	switch p.Datatype {
	case DatatypeBoolean, DatatypeString:
		if p.Format != "" {
			err = fmt.Errorf("a %s property takes no format", p.Datatype)
		}
	case DatatypeInteger, DatatypeFloat:
		_, err = parseRange(p.Format)
	case DatatypeEnum:
		err = checkEnum(p.Format)
	case DatatypeColor:
		if p.Format != "" && p.Format != ColorRGB && p.Format != ColorHSV {
			err = errors.New(`want "rgb" or "hsv"`)
		}
	default:
		return &tokens.FieldError{Field: field + ".datatype",
			Reason: fmt.Sprintf("unknown datatype %q (want boolean, integer, float, enum, color or string)", p.Datatype)}
	}
	if err != nil {
		return &tokens.FieldError{Field: field + ".format", Reason: err.Error()}
	}
	return nil
}

// checkName checks a device, node or property name.
func checkName(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return &tokens.FieldError{Field: field, Reason: "required"}
	}
	return checkText(field, s, maxNameLen)
}

// checkText checks that s is valid UTF-8 of at most max runes without
// control characters.
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return &tokens.FieldError{Field: field, Reason: "must be valid UTF-8"}
	}
	if utf8.RuneCountInString(s) > max {
		return &tokens.FieldError{Field: field, Reason: fmt.Sprintf("at most %d characters", max)}
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return &tokens.FieldError{Field: field, Reason: "must not contain control characters"}
	}
	return nil
}

func checkType(s string) error {
	if s == "" {
		return &tokens.FieldError{Field: "type", Reason: "required"}
	}
	if len(s) > maxTypeLen {
		return &tokens.FieldError{Field: "type", Reason: fmt.Sprintf("at most %d characters", maxTypeLen)}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return &tokens.FieldError{Field: "type", Reason: "only lowercase letters, digits and hyphens"}
		}
	}
	return nil
}

// checkID checks a Homie topic id: ^[a-z0-9]+(-[a-z0-9]+)*$, at most 64
// characters.
func checkID(field, s string) error {
	if s == "" {
		return &tokens.FieldError{Field: field, Reason: "required"}
	}
	if len(s) > maxIDLen {
		return &tokens.FieldError{Field: field, Reason: fmt.Sprintf("at most %d characters", maxIDLen)}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLowerAlnum(c) {
			continue
		}
		if c != '-' || i == 0 || i == len(s)-1 || s[i-1] == '-' {
			return &tokens.FieldError{Field: field,
				Reason: "want lowercase letters and digits, in groups joined by single hyphens"}
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
