package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSON writes r as indented JSON: the load tool's report file.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by [WriteJSON].
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("loadtest: reading a report: %w", err)
	}
	return &r, nil
}
