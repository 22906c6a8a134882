# msync: make demo (try it), make test (everything CI runs), make bench, make stress.
GO      ?= go
BIN     := bin/msync
# Fuzz budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" when the time runs out (golang/go#75804, fixed in Go 1.27).
# Each is about 10 s here.
FUZZ_READER ?= 150000x
FUZZ_OPS ?= 400000x
FUZZ_SIG ?= 600000x
FUZZ_FRAMES ?= 300000x
FUZZ_JOURNAL ?= 20000x
FUZZ_COMPARE ?= 500000x
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps test unit race fuzz vet staticcheck man demo bench benchcheck stress difftest clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/msync

# A man page per command, generated from the command tree into bin/man (not
# committed: generated from the code, like the binary; SOURCE_DATE_EPOCH
# fixes their date). Read one with: man -l bin/man/msync-catchup.1
man: build
	$(BIN) gen-man bin/man

# The real-tool tests need rsync, BSD mtree and OpenSSH; install what is missing.
deps:
	@bash scripts/deps.sh

# go vet, gofmt, and the layering check: imports point down DESIGN.md's
# package diagram (scripts/layers.sh, tested by scripts/layers_test.sh).
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	@bash scripts/layers_test.sh
	bash scripts/layers.sh

# staticcheck, pinned as a tool dependency in go.mod (go tool staticcheck).
staticcheck:
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

# Each fuzz target runs briefly on top of its corpus in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_READER) ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzCompare$$' -fuzztime $(FUZZ_COMPARE) ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzOpReader$$' -fuzztime $(FUZZ_OPS) ./delta
	$(GO) test -run '^$$' -fuzz '^FuzzSignature$$' -fuzztime $(FUZZ_SIG) ./delta
	$(GO) test -run '^$$' -fuzz '^FuzzFrames$$' -fuzztime $(FUZZ_FRAMES) ./transport/wire
	$(GO) test -run '^$$' -fuzz '^FuzzFileList$$' -fuzztime $(FUZZ_FRAMES) ./transport/rsync
	$(GO) test -run '^$$' -fuzz '^FuzzJournal$$' -fuzztime $(FUZZ_JOURNAL) ./sync/state

test: deps vet staticcheck build unit race fuzz benchcheck
	@echo "make test: all tests passed"

# Proves the benchmark harness works (speed is never asserted in tests).
benchcheck: build
	d=$$(mktemp -d) && $(BIN) bench run --scale 0.01 --runs 1 --ssh-loopback --rsync-daemon --dir $$d >$$d/table.md && \
	n=$$(grep -c '^| [a-z].* s ([0-9.]*) | \([^|]* s ([0-9.]*)\)\{0,1\} | [0-9]* / [0-9]* MiB |$$' $$d/table.md) && test "$$n" -eq 5 || \
	{ echo "benchcheck: want a floor on the 5 local time rows of $$d/table.md, found $${n:-none}"; exit 1; }; \
	n=$$(grep -c '^| [a-z].* s ([0-9.]*) | [^|]* s ([0-9.]*) | [0-9]* / [0-9]* MiB |$$' $$d/table.md) && test "$$n" -eq 4 || \
	{ echo "benchcheck: want a floor with msync's duties on 4 rows (initial, both no-change, catch-up) of $$d/table.md, found $${n:-none}"; exit 1; }
	$(BIN) bench estimate-check --scale 0.01 --dir $$(mktemp -d)/ec >/dev/null

# Every package that starts goroutines (grep -rln 'go func') and has tests,
# but bench: its tests take about 2 minutes under -race (make unit runs them).
race:
	$(GO) test -race -count=1 ./internal/e2e/ ./internal/netx/ ./internal/cli/ ./manifest/ ./verify/ ./sync/... ./transport/...

demo: build
	@bash scripts/demo.sh

# Side by side with rsync (about 10 minutes here), then the micro-benchmarks.
# BENCH_FLAGS=--drop-caches (root) starts every timed command from dropped
# caches with only its own trees read back.
BENCH_SCALE ?= 0.3
BENCH_RUNS ?= 4
BENCH_FLAGS ?=
bench: build deps
	$(BIN) bench run --scale $(BENCH_SCALE) --runs $(BENCH_RUNS) --ssh-loopback --rsync-daemon $(BENCH_FLAGS) -o bench/latest.md
	$(GO) test -run '^$$' -bench . -benchtime 3x ./delta ./manifest ./sync/scan ./transport/rsync | tee bench/micro.txt

# 50 seeded kill points per pass kind, ssh and daemon kills, 130 rounds of a
# pass killed right after a rename, mkdir, symlink or link or at a random
# moment, the source emptied or changed, and a catch-up that must converge
# exactly (nothing extra, nothing missing), then peak RSS of initial and
# catch-up on 1,000,000 tiny files (about 30 minutes).
stress: build deps
	MSYNC_STRESS=1 $(GO) test -count=1 -timeout 60m -run 'Kill' -v ./internal/e2e/
	$(BIN) bench run --scale 0.01 --runs 1 --mem-files 1000000 --dir $$(mktemp -d)

# Behaviour against an earlier revision: DIFF_BASE's binary and this tree's
# run side by side over seeded random trees, every mode (local, ssh, the
# msync daemon, stock rsync both ways, plans, kills); any difference in
# DST, itemize lines, --json, exit codes or records fails it.
DIFF_BASE ?= 3f48111
DIFF_SEEDS ?= 1-2
difftest: build deps
	d=$$(mktemp -d) && git archive $(DIFF_BASE) | tar -x -C $$d && (cd $$d && $(GO) build -o $$d/msync-old ./cmd/msync) && \
	python3 scripts/difftest.py $$d/msync-old $(BIN) --seeds $(DIFF_SEEDS)

clean:
	rm -rf bin demo
