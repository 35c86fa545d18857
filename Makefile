GO ?= go
BIN := bin/ghlflow
REDIS_ADDR ?= 127.0.0.1:6379
export REDIS_ADDR

.PHONY: all build test test-short lint bench bench-e2e demo redis fuzz

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ghlflow

## test: vet, then every test with the race detector, then the timed bounds without it (needs Redis at $(REDIS_ADDR)).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'AnswerTime' ./engine/webhook/
	$(GO) test -count=1 -run 'TenantScale' ./engine/

## test-short: the fast loop: vet, then every test but the long soak and crash tests.
test-short:
	$(GO) vet ./...
	$(GO) test -race -short -count=1 -p 8 -parallel 8 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./cmd/ghlflow recipe lint catalog/recipes/*.yaml catalog/recipes/*/*.yaml

## bench: the hot-path benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-e2e: the engine, the simulator and Redis as separate processes under 40 tenants x 50 recipes
## every 10 s for 60 s (SCENARIO=steady|scale|budget|chaos); a table, bench-out/bench.json and bench.svg.
SCENARIO ?= steady
bench-e2e: build
	$(BIN) bench --scenario $(SCENARIO) --tenants 40 --recipes 50 --every 10s --duration 60s --out bench-out

## fuzz: a short run of each fuzz target.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRecipe -fuzztime 30s ./catalog/

## redis: make sure a Redis server answers at 127.0.0.1:6379.
redis:
	@scripts/ensure-redis

## demo: the engine on the built-in simulator with the example recipes.
demo: build redis
	@scripts/demo
