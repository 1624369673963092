package gateway_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/linkgate/linkgate/"

// TestImportArrows keeps the architecture of DESIGN.md honest: leaf packages
// import none of ours (or only what the design allows).
func TestImportArrows(t *testing.T) {
	allowed := map[string][]string{
		"tokens":   nil,
		"media":    nil,
		"web":      nil,
		"emulator": {"tokens"},
		"loadtest": {"gateway/ownerapi", "tokens", "web"}, // web: the baseline serves the link page
	}
	for dir, ok := range allowed {
		for imp, file := range imports(t, filepath.Join("..", dir)) {
			ours, isOurs := strings.CutPrefix(imp, module)
			if isOurs && !slices.Contains(ok, ours) {
				t.Errorf("%s imports %s (in %s); allowed: %v", dir, imp, file, ok)
			}
		}
	}
}

// imports returns the imports of the non-test Go files of dir (not of its
// sub-packages, which may be test support).
func imports(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			out[strings.Trim(imp.Path.Value, `"`)] = name
		}
	}
	return out
}
