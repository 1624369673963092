package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The viewers scenario is listed, documents its flags, and refuses a run
// with neither a link nor the means to mint one, as a usage error.
func TestLoadtestViewersFlags(t *testing.T) {
	t.Setenv(envAPIKey, "")
	var out, errs bytes.Buffer
	if code := runLoadtest(context.Background(), []string{"-h"}, &out, &errs); code != exitOK || !strings.Contains(out.String(), "viewers ") {
		t.Errorf("loadtest -h: exit %d, viewers not listed:\n%s", code, out.String())
	}
	out.Reset()
	if code := runLoadtest(context.Background(), []string{"viewers", "-h"}, &out, &errs); code != exitOK {
		t.Errorf("loadtest viewers -h: exit %d", code)
	}
	for _, flag := range []string{"-link", "-rtsp", "-hold", "-stall-after", "-settle", "-window", "LINKGATE_LOADTEST_STALL_AFTER"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("usage does not mention %s", flag)
		}
	}
	errs.Reset()
	code := runLoadtest(context.Background(), []string{"viewers", "--target", "http://127.0.0.1:1", "--rtsp", "rtsp://127.0.0.1:1/cam"}, &out, &errs)
	if code != exitUsage || !strings.Contains(errs.String(), "--link") {
		t.Errorf("no link and no API key: exit %d, %s", code, errs.String())
	}
}
