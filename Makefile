# The documented entry points. Scripts under deploy/ do the real work and can
# be run alone.
.PHONY: run test bench build image lint fuzz services-up services-down

# The whole service in one process on embedded defaults (the demo).
run:
	@deploy/run-dev.sh $(ARGS)

# Install what is missing, start the real Postgres and Kafka, run every
# test (race detector on), stop the services.
test:
	@deploy/test.sh

# `disburse bench` on the targets' scenarios and the Go micro-benchmarks, on
# the real services (docs/benchmarks.md). SCENARIOS=... picks some;
# DISBURSE_KEEP_SERVICES=1 leaves the services running.
bench:
	@deploy/bench.sh

build:
	go build -o bin/disburse ./cmd/disburse

# The container image (needs Docker; see Dockerfile and docs/operations.md).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$$(git rev-parse HEAD) -t disburse:$(VERSION) .

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	go vet ./...

# Run each fuzz target for a while (FUZZTIME=1m); seeds live in testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	go test -run XXX -fuzz FuzzDecodeStrict -fuzztime $(FUZZTIME) ./api
	go test -run XXX -fuzz FuzzSettingsPatch -fuzztime $(FUZZTIME) ./api
	go test -run XXX -fuzz FuzzNormalizePhone -fuzztime $(FUZZTIME) ./connectors
	go test -run XXX -fuzz FuzzParseProfileFile -fuzztime $(FUZZTIME) ./connectors
	go test -run XXX -fuzz FuzzCSV -fuzztime $(FUZZTIME) ./batch
	go test -run XXX -fuzz FuzzJSON -fuzztime $(FUZZTIME) ./batch
	go test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./callbacks/signature

services-up:
	@deploy/services.sh up
	@echo 'now: eval "$$(deploy/services.sh env)"'

services-down:
	@deploy/services.sh down
