# The two commands of the README: `go run ./cmd/linkgate` and `make test`.
# `make test` installs the system packages the tests drive (real Redis now;
# Chromium and ffmpeg as the browser and media tests arrive) and runs every
# test with the race detector. Under CI=true a missing component fails the
# tests instead of skipping them.

GO       ?= go
# command=package pairs the tests need on PATH.
SYSDEPS  := redis-server=redis-server chromium=chromium ffmpeg=ffmpeg
TIMEOUT  ?= 60m

.PHONY: test deps vet bench fuzz run

# Packages run one at a time (-p 1): the browser and media tests measure
# playback and latency, which two busy cores shared with other packages'
# tests would distort. Tests inside a package still run in parallel.
test: deps vet
	$(GO) test -race -count=1 -p 1 -timeout $(TIMEOUT) ./...

deps:
	@missing=""; \
	for pair in $(SYSDEPS); do \
		command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make: installing$$missing"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vet:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Benchmarks of BENCHMARKS.md (the load comparison is loadtest/bench-open.sh).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./tokens/

# A short fuzzing pass over every fuzz target.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzVerify$$ -fuzztime 30s ./tokens/
	$(GO) test -run '^$$' -fuzz FuzzVerifySession -fuzztime 30s ./tokens/

run:
	$(GO) run ./cmd/linkgate
