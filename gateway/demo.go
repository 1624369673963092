package gateway

import (
	"context"
	"fmt"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// Demo is what SeedDemo created.
type Demo struct {
	Owner   Owner
	APIKey  string
	Devices []*emulator.Device
	// Link is a link to the demo plug: it may switch the plug and see its
	// power, not its energy meter.
	Link *tokens.Link
	// LinkURL is Link's public URL.
	LinkURL string
}

// SeedDemo creates a demo owner, the demo devices and a demo link, for the
// embedded mode of linkgate serve and for tests.
func (s *Server) SeedDemo(ctx context.Context) (*Demo, error) {
	own, key, err := s.owners.Create(ctx, "demo")
	if err != nil {
		return nil, fmt.Errorf("demo owner: %w", err)
	}
	demo := &Demo{Owner: own, APIKey: key}
	for _, d := range emulator.DemoDevices() {
		d.Owner = own.ID
		if err := s.devices.Create(ctx, d); err != nil {
			return nil, fmt.Errorf("demo device %s: %w", d.Name, err)
		}
		demo.Devices = append(demo.Devices, d)
	}
	plug := demo.Devices[0]
	l := &tokens.Link{
		Owner:  own.ID,
		Device: plug.ID,
		Name:   "Guest: kitchen plug",
		Permissions: tokens.Permissions{
			Control: []string{"switch/on"},
			View:    []string{"meter/power"},
		},
	}
	if err := checkLink(l, plug, "permissions."); err != nil {
		return nil, fmt.Errorf("demo link: %w", err)
	}
	if err := s.links.Create(ctx, s.keys, l); err != nil {
		return nil, fmt.Errorf("demo link: %w", err)
	}
	demo.Link, demo.LinkURL = l, s.LinkURL(l.Token)
	return demo, nil
}
