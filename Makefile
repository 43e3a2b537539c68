# Two commands set everything up: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test test-fast lint bench browser-deps docker-test screenshots clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,test,e2e,ray]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/backproplab serve --host $(HOST) --port $(PORT)

# Debian's Chromium drives the browser tests (never `playwright install`).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

lint: $(STAMP)
	$(PY) -m ruff check backend tests benchmarks scripts

# the whole suite: lint, unit, API, live-server, browser tests, then the Docker smoke test
test: $(STAMP) browser-deps lint
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) docker-test

docker-test: $(STAMP)
	PY=$(PY) bash scripts/docker_test.sh

screenshots: $(STAMP) browser-deps
	$(PY) scripts/screenshots.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not browser and not docker and not slow"

# the anchors of watch_overhead (wandb, tensorboard) come with the bench extra
bench: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	cd benchmarks && for b in tape_vs_torch jacobian_modes probe_overhead phase_sweep \
	  stream_latency load watch_overhead store compiled memory experiments classroom \
	  api_export; do ../$(PY) $$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
