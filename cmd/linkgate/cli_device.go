package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
)

// runDevice runs "linkgate device ARGS..." and returns the exit status.
func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return deviceGroup.run(ctx, &cliEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}, args)
}

// runCamera runs "linkgate camera ARGS...": the device commands on the
// owner API's camera routes, where only cameras exist, and with camera
// flags for create and edit.
func runCamera(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cameraGroup.run(ctx, &cliEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}, args)
}

var (
	deviceGroup = newDeviceGroup(false)
	cameraGroup = newDeviceGroup(true)
)

// maxDeviceFile is the server's limit on a request body.
const maxDeviceFile = 64 << 10

// deviceCommands runs the device or the camera commands.
type deviceCommands struct {
	camera bool
	what   string // "device" or "camera"
}

func newDeviceGroup(camera bool) *cliGroup {
	d := &deviceCommands{camera: camera, what: "device"}
	g := &cliGroup{
		name:    "device",
		summary: "Manage devices over the owner API. A camera is a device of type camera; see also linkgate camera.",
		common:  apiFlagsHelp,
	}
	create := &cliCommand{
		name: "create", args: "--type TYPE --file FILE [--name NAME]", summary: "create a device from a JSON description",
		help: `Create a device. FILE (- for stdin) holds its nodes, {"nodes": [...]} or
just [...], or the whole request, {"name", "type", "nodes", "rtsp"}; --name
and --type override the file's. A node is
  {"id": "switch", "name": "Switch", "properties": [
    {"id": "on", "name": "On", "datatype": "boolean", "settable": true},
    {"id": "power", "name": "Power", "datatype": "float", "unit": "W", "format": "0:3600"}]}
Datatypes: boolean, integer, float, enum, color, string. Format: a range
min:max[:step] for numbers, the values a,b,c for enum, rgb or hsv for color.`,
	}
	edit := &cliCommand{
		name: "edit", args: "ID [--name NAME] [--type TYPE] [--file FILE]", summary: "rename a device, change its type or replace its nodes",
		help: `Change a device. Only the flags given change. --file (- for stdin) replaces
the nodes, and sets whatever else the file holds ({"name", "type", "nodes",
"rtsp"}); flags override the file. Links to the device follow at once.`,
	}
	if camera {
		d.what = "camera"
		g.name = "camera"
		g.summary = "Manage cameras over the owner API."
		create.args, create.summary = "--name NAME --url RTSP-URL [--transport tcp|udp]", "add a camera"
		create.help = `Add a camera that the gateway pulls over RTSP. The URL's credentials stay
on the server; answers show them masked. --url - reads the URL from stdin,
which keeps credentials out of the process list.`
		edit.args, edit.summary = "ID [--name NAME] [--url RTSP-URL [--transport tcp|udp]]", "rename a camera or change its source"
		edit.help = `Change a camera. Only the flags given change. --transport needs --url: the
server shows the URL only masked, so it cannot be kept as it is.`
	}
	create.run, edit.run = d.create, d.edit
	g.commands = []*cliCommand{
		create,
		{name: "list", args: "[--limit N] [--all]", summary: "list " + d.what + "s",
			help: "List " + d.what + `s one page at a time: --cursor takes the next page's cursor,
which list prints on stderr; --all fetches every page.`, run: d.list},
		{name: "show", args: "ID", summary: "show a " + d.what + " and its properties", help: "Show a " + d.what + " and its properties.", run: d.show},
		edit,
		{name: "delete", args: "ID", summary: "delete a " + d.what,
			help: "Delete a " + d.what + ". The server refuses (exit status 4) while links point at it.", run: d.delete},
	}
	return g
}

func (d *deviceCommands) create(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	name := fs.String("name", "", "the "+d.what+"'s `name`")
	var typ, file, rtspURL, transport *string
	if d.camera {
		rtspURL = fs.String("url", "", "the RTSP source, rtsp://[user:pass@]host[:port]/path; - reads it from stdin")
		transport = fs.String("transport", "", "RTSP transport, tcp or udp (default tcp)")
	} else {
		typ = fs.String("type", "", "the device's `type`, such as plug, light or thermostat")
		file = fs.String("file", "", "JSON `file` with the device's nodes; - for stdin")
	}
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}

	var req ownerapi.DeviceCreate
	if d.camera {
		if *name == "" {
			return usageErrorf("--name is required")
		}
		src, err := e.rtspSource(*rtspURL, *transport)
		if err != nil {
			return err
		}
		if src == nil {
			return usageErrorf("--url is required")
		}
		req = ownerapi.DeviceCreate{Name: *name, Type: emulator.TypeCamera, RTSP: src}
	} else {
		if *file == "" {
			return usageErrorf("--file is required: a device needs its nodes")
		}
		if req, err = e.readDeviceFile(*file); err != nil {
			return err
		}
		if *name != "" {
			req.Name = *name
		}
		if *typ != "" {
			req.Type = *typ
		}
		if req.Name == "" || req.Type == "" {
			return usageErrorf("--name and --type are required (or name and type in the file)")
		}
	}

	c, err := e.client()
	if err != nil {
		return err
	}
	var dev *ownerapi.Device
	if d.camera {
		dev, err = c.CreateCamera(ctx, req)
	} else {
		dev, err = c.CreateDevice(ctx, req)
	}
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(dev)
	}
	return writeDevice(e.stdout, dev)
}

func (d *deviceCommands) list(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	limit := fs.Int("limit", 0, d.what+"s per page, 1 to 200; 0: the server's default (50)")
	cursor := fs.String("cursor", "", "start at this page `cursor`, from a previous list")
	all := fs.Bool("all", false, "fetch every page")
	typ := new(string)
	if !d.camera {
		typ = fs.String("type", "", "only devices of this `type`")
	}
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	page, err := collect(*cursor, *all, func(cursor string) (*ownerapi.Page[ownerapi.Device], error) {
		if d.camera {
			return c.ListCameras(ctx, cursor, *limit)
		}
		return c.ListDevicesOfType(ctx, *typ, cursor, *limit)
	})
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(page)
	}
	if d.camera {
		t := newTable(e.stdout, "ID", "NAME", "RTSP", "TRANSPORT", "UPDATED")
		for _, dev := range page.Items {
			var url, transport string
			if dev.RTSP != nil {
				url, transport = dev.RTSP.URL, dev.RTSP.Transport
			}
			t.row(dev.ID, dev.Name, url, transport, formatTime(dev.UpdatedAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	} else {
		t := newTable(e.stdout, "ID", "NAME", "TYPE", "KIND", "PROPERTIES", "UPDATED")
		for _, dev := range page.Items {
			t.row(dev.ID, dev.Name, dev.Type, dev.Kind, strconv.Itoa(countProperties(dev.Nodes)), formatTime(dev.UpdatedAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	moreHint(e, page.Next)
	return nil
}

func (d *deviceCommands) show(ctx context.Context, e *cliEnv, args []string) error {
	c, id, err := e.idCommand(args, d.what+" ID")
	if err != nil {
		return err
	}
	var dev *ownerapi.Device
	if d.camera {
		dev, err = c.GetCamera(ctx, id)
	} else {
		dev, err = c.GetDevice(ctx, id)
	}
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(dev)
	}
	return writeDevice(e.stdout, dev)
}

func (d *deviceCommands) edit(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	name := fs.String("name", "", "the "+d.what+"'s new `name`")
	var typ, file, rtspURL, transport *string
	if d.camera {
		rtspURL = fs.String("url", "", "the new RTSP source; - reads it from stdin")
		transport = fs.String("transport", "", "RTSP transport, tcp or udp (default tcp); needs --url")
	} else {
		typ = fs.String("type", "", "the device's new `type`")
		file = fs.String("file", "", "JSON `file` with the new nodes (and whatever else it sets); - for stdin")
	}
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(pos, d.what+" ID")
	if err != nil {
		return err
	}
	set := visited(fs)

	var p ownerapi.DevicePatch
	if set["file"] {
		req, err := e.readDeviceFile(*file)
		if err != nil {
			return err
		}
		if req.Nodes == nil {
			return usageErrorf("--file: the file has no nodes")
		}
		p.Nodes = &req.Nodes
		if req.Name != "" {
			p.Name = &req.Name
		}
		if req.Type != "" {
			p.Type = &req.Type
		}
		p.RTSP = req.RTSP
	}
	if set["name"] {
		p.Name = name
	}
	if set["type"] {
		p.Type = typ
	}
	if d.camera {
		if set["transport"] && !set["url"] {
			return usageErrorf("--transport needs --url: the server shows the URL only masked, so it cannot be kept as it is")
		}
		if set["url"] {
			if p.RTSP, err = e.rtspSource(*rtspURL, *transport); err != nil {
				return err
			}
			if p.RTSP == nil {
				return usageErrorf("--url: empty")
			}
		}
	}
	if p == (ownerapi.DevicePatch{}) {
		return usageErrorf("nothing to change: give at least one flag")
	}

	c, err := e.client()
	if err != nil {
		return err
	}
	var dev *ownerapi.Device
	if d.camera {
		dev, err = c.UpdateCamera(ctx, id, p)
	} else {
		dev, err = c.UpdateDevice(ctx, id, p)
	}
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(dev)
	}
	return writeDevice(e.stdout, dev)
}

func (d *deviceCommands) delete(ctx context.Context, e *cliEnv, args []string) error {
	c, id, err := e.idCommand(args, d.what+" ID")
	if err != nil {
		return err
	}
	if d.camera {
		err = c.DeleteCamera(ctx, id)
	} else {
		err = c.DeleteDevice(ctx, id)
	}
	if err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.stdout, "deleted %s %s\n", d.what, clean(id))
	}
	return nil
}

// rtspSource returns the camera source of --url and --transport, or nil
// when url is empty. Messages never quote the URL: it may hold
// credentials.
func (e *cliEnv) rtspSource(url, transport string) (*emulator.RTSPSource, error) {
	if url == "-" {
		line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("--url -: reading stdin: %w", err)
		}
		url = strings.TrimSpace(line)
		if url == "" {
			return nil, usageErrorf("--url -: stdin holds no URL")
		}
	}
	if url == "" {
		return nil, nil
	}
	if !strings.HasPrefix(url, "rtsp://") && !strings.HasPrefix(url, "rtsps://") {
		return nil, usageErrorf("--url: want an rtsp:// or rtsps:// URL")
	}
	switch transport {
	case "", emulator.TransportTCP, emulator.TransportUDP:
	default:
		return nil, usageErrorf("--transport %q: want tcp or udp", transport)
	}
	e.secrets = append(e.secrets, url)
	return &emulator.RTSPSource{URL: url, Transport: transport}, nil
}

// readDeviceFile reads a device description: {"nodes": [...]}, a bare
// [...] of nodes, or a whole DeviceCreate. Unknown fields are refused, as
// the server would.
func (e *cliEnv) readDeviceFile(path string) (ownerapi.DeviceCreate, error) {
	var req ownerapi.DeviceCreate
	var r io.Reader
	if path == "-" {
		r = e.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return req, usageErrorf("--file: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDeviceFile+1))
	if err != nil {
		return req, fmt.Errorf("--file: %w", err)
	}
	if len(b) > maxDeviceFile {
		return req, usageErrorf("--file: larger than %d KiB, the server's limit for a request", maxDeviceFile>>10)
	}
	b = bytes.TrimSpace(b)
	var dst any = &req
	if len(b) > 0 && b[0] == '[' {
		dst = &req.Nodes
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return req, usageErrorf("--file %s: %v", path, err)
	}
	if dec.More() {
		return req, usageErrorf("--file %s: unexpected data after the JSON value", path)
	}
	if req.RTSP != nil {
		e.secrets = append(e.secrets, req.RTSP.URL)
	}
	return req, nil
}

func countProperties(nodes []emulator.Node) int {
	n := 0
	for _, node := range nodes {
		n += len(node.Properties)
	}
	return n
}

// writeDevice prints a device as "key: value" lines, then its properties.
func writeDevice(w io.Writer, d *ownerapi.Device) error {
	f := newFields(w)
	f.add("id", d.ID)
	f.add("name", d.Name)
	f.add("type", d.Type)
	f.add("kind", d.Kind)
	if d.RTSP != nil {
		f.add("rtsp", d.RTSP.URL)
		f.add("transport", d.RTSP.Transport)
		f.add("credentials", yesNo(d.RTSP.HasCredentials))
	}
	f.add("properties", strconv.Itoa(countProperties(d.Nodes)))
	f.add("created", formatTime(d.CreatedAt))
	f.add("updated", formatTime(d.UpdatedAt))
	f.add("version", strconv.FormatInt(d.Version, 10))
	if err := f.flush(); err != nil {
		return err
	}
	if countProperties(d.Nodes) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "PROPERTY", "NAME", "DATATYPE", "UNIT", "FORMAT", "SETTABLE")
	for _, n := range d.Nodes {
		for _, p := range n.Properties {
			t.row(n.ID+"/"+p.ID, p.Name, string(p.Datatype), p.Unit, p.Format, yesNo(p.Settable))
		}
	}
	return t.flush()
}
