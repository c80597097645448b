# chatbench — every target installs what it needs first, so a fresh clone works.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The versions CI checked (`make lock` writes it): `make install` installs exactly these.
CONSTRAINTS := constraints.txt
LOCK_VENV   := .venv-lock

# Bench knobs (override on the command line: make bench CLIENTS=10,100 RATE=500)
CLIENTS  ?= 10,50,100,250,500,1000
RATE     ?= 100
DURATION ?= 5
PAYLOAD  ?= 64
TARGET   ?= embedded
FANOUT   ?=
P95_BOUND ?= 500

NODES    ?= 4
CLUSTER_NODES ?= 1,2,4,8
CLUSTER_CLIENTS ?= 200
CLUSTER_RATE ?= 25

# Empty: compare's own defaults (`python -m bench compare --help` lists them).
COMPARE_TARGETS ?=
COMPARE_CLIENTS ?= 10,50,100,250,500
COMPARE_TARGET_ARGS = $(if $(COMPARE_TARGETS),--targets $(COMPARE_TARGETS))

.PHONY: install lock test lint selftest bench capacity bench-gate bench-baseline bench-replay peers compare soak soak-churn cluster bench-cluster help clean

help:
	@echo "make install   create $(VENV) and install chatbench with its bench and test extras, pinned by $(CONSTRAINTS)"
	@echo "make lock      rewrite $(CONSTRAINTS) from a fresh virtualenv (the newest releases pyproject.toml allows)"
	@echo "make test      run the test suite in TEST_JOBS=2 processes, then the fan-out gate alone (what CI runs)"
	@echo "make lint      ruff + mypy"
	@echo "make selftest  the harness against a fault-injecting relay: exact loss/dup/reorder/corrupt counts, latency (< 2 min)"
	@echo "make bench     sweep 10..1000 clients x queued/direct fan-out; report in reports/latest/report.html"
	@echo "make capacity  largest client count with p95 <= $(P95_BOUND) ms, no loss (4 senders); reports/latest-capacity/"
	@echo "make bench-replay    the harness's own receive path, no sockets: deliveries/s per process"
	@echo "make bench-gate      fan-out regression gate: server vs calibration relay ratio against the baseline"
	@echo "make bench-baseline  re-measure bench/gate/baseline.json (7 runs, keeps the tolerances)"
	@echo "make peers     install every target's peer server (ngircd, mosquitto, redis-server, nats-server via apt-get; miniircd via pip)"
	@echo "make compare   same sweep against ours and the peers (COMPARE_TARGETS=embedded,redis,...; default: compare's own); reports/compare/"
	@echo "make cluster  redis-server + NODES=$(NODES) server nodes on port 8000 over a Redis backplane (Ctrl-C stops)"
	@echo "make bench-cluster  deliveries/s and p99 vs nodes ($(CLUSTER_NODES)), scaling chart in reports/*-cluster/"
	@echo "make soak      60 s bounded soak; checks the server returns to its idle RSS/threads/fds"
	@echo "make soak-churn 100,000 connections churned at 500/s during traffic: no leak (threads, fds, RSS within 10%)"

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[bench,test]'
	touch $(STAMP)

install: $(STAMP)

# Resolve every dependency afresh (and miniircd, the pip-installed peer) in a
# throw-away virtualenv and pin what it got; commit the result with the change
# that needed it.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet -e '.[bench,test]' miniircd
	{ echo "# The versions CI checks: make install uses them (pip install -c $(CONSTRAINTS))."; \
	  echo "# Written by make lock with $$($(LOCK_VENV)/bin/python --version); do not edit by hand."; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

# The suite in TEST_JOBS processes (pytest-xdist), then the fan-out gate (tests/perf) on its
# own: a ratio gate measures nothing else running beside it.
TEST_JOBS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --ignore=tests/perf; status=$$?; \
	$(BIN)/python -m pytest tests/perf || status=1; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check server client bench tests tools
	$(BIN)/ruff format --check server client bench tests tools
	$(BIN)/mypy

selftest: $(STAMP)
	$(BIN)/python -m bench selftest --locust

bench: $(STAMP)
	$(BIN)/python -m bench sweep --clients $(CLIENTS) --rate $(RATE) --duration $(DURATION) --payload $(PAYLOAD) --target $(TARGET) $(if $(FANOUT),--fanout $(FANOUT))

capacity: $(STAMP)
	$(BIN)/python -m bench capacity --target $(TARGET) --payload $(PAYLOAD) --p95-bound $(P95_BOUND) $(if $(FANOUT),--fanout $(FANOUT))

bench-replay: $(STAMP)
	$(BIN)/python -m bench replay --deliveries 1000000 --chunk-bytes 262144,65536,16384,1024

bench-gate: $(STAMP)
	$(BIN)/python -m bench gate

bench-baseline: $(STAMP)
	$(BIN)/python -m bench gate --write-baseline

peers: $(STAMP)
	$(BIN)/python -m bench peers --all --install

compare: $(STAMP)
	$(BIN)/python -m bench peers --install $(COMPARE_TARGET_ARGS)
	$(BIN)/python -m bench compare --clients $(COMPARE_CLIENTS) --rate $(RATE) --duration $(DURATION) --payload $(PAYLOAD) $(COMPARE_TARGET_ARGS)

soak: $(STAMP)
	$(BIN)/python -m bench soak

soak-churn: $(STAMP)
	$(BIN)/python -m bench soak --clients 200 --rate 100 --churn 500 --churned 100000 --out reports/soak-churn.json

cluster: $(STAMP)
	$(BIN)/python -m bench cluster --nodes $(NODES)

bench-cluster: $(STAMP)
	$(BIN)/python -m bench cluster-scaling --nodes $(CLUSTER_NODES) --clients $(CLUSTER_CLIENTS) --rate $(CLUSTER_RATE) --rate-per-node --duration $(DURATION) --payload $(PAYLOAD)

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .mypy_cache .ruff_cache
