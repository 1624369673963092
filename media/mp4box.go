package media

import (
	"encoding/binary"
	"errors"
)

var errBoxes = errors.New("malformed MP4 boxes")

// renameSampleEntry renames, in place, every sample entry of type from to
// type to (moov/trak/mdia/minf/stbl/stsd/<entry>). The two entries must have
// the same layout, as hev1 and hvc1 do.
func renameSampleEntry(init []byte, from, to string) error {
	if len(from) != 4 || len(to) != 4 {
		return errBoxes
	}
	path := []string{"moov", "trak", "mdia", "minf", "stbl", "stsd"}
	found := false
	var walk func(b []byte, depth int) error
	walk = func(b []byte, depth int) error {
		for len(b) > 0 {
			if len(b) < 8 {
				return errBoxes
			}
			size := int(binary.BigEndian.Uint32(b))
			if size < 8 || size > len(b) {
				return errBoxes
			}
			typ, body := string(b[4:8]), b[8:size]
			switch {
			case depth < len(path) && typ == path[depth]:
				if typ == "stsd" {
					// full box header and entry count, then the entries
					if len(body) < 8 {
						return errBoxes
					}
					if err := walk(body[8:], depth+1); err != nil {
						return err
					}
				} else if err := walk(body, depth+1); err != nil {
					return err
				}
			case depth == len(path) && typ == from:
				copy(b[4:8], to)
				found = true
			}
			b = b[size:]
		}
		return nil
	}
	if err := walk(init, 0); err != nil {
		return err
	}
	if !found {
		return errBoxes
	}
	return nil
}
