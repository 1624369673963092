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
	// Camera and CameraLink exist when SeedDemo was given a camera source:
	// a camera link with the live level.
	Camera        *emulator.Device
	CameraLink    *tokens.Link
	CameraLinkURL string
}

// SeedDemo creates a demo owner, the demo devices and a demo link, for the
// embedded mode of linkgate serve and for tests. With a camera URL it also
// creates a demo camera and a live camera link.
func (s *Server) SeedDemo(ctx context.Context, cameraURL string) (*Demo, error) {
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
	if cameraURL == "" {
		return demo, nil
	}
	cam := &emulator.Device{Owner: own.ID, Name: "Front door camera", Type: emulator.TypeCamera,
		RTSP: &emulator.RTSPSource{URL: cameraURL}}
	if err := s.devices.Create(ctx, cam); err != nil {
		return nil, fmt.Errorf("demo camera: %w", err)
	}
	cl := &tokens.Link{Owner: own.ID, Device: cam.ID, Name: "Guest: front door",
		Permissions: tokens.Permissions{Camera: []string{tokens.LevelLive}}}
	if err := checkLink(cl, cam, "permissions."); err != nil {
		return nil, fmt.Errorf("demo camera link: %w", err)
	}
	if err := s.links.Create(ctx, s.keys, cl); err != nil {
		return nil, fmt.Errorf("demo camera link: %w", err)
	}
	demo.Camera, demo.CameraLink, demo.CameraLinkURL = cam, cl, s.LinkURL(cl.Token)
	return demo, nil
}
