# The two commands of the README: `make run` and `make test`. Everything they need
# is installed from here, so a fresh Debian/Ubuntu machine with Python 3.11+ works.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := mosquitto mosquitto-clients mbpoll socat libmodbus-dev pkg-config chromium
ARGS ?=

.PHONY: run test install install-test system-deps lint typecheck pytest bench soak docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# An editable install compiles no bytecode (a regular pip install does), and a shell
# with PYTHONDONTWRITEBYTECODE set never writes it: every command would compile the
# package's modules again (~0.05 s of each start), so they are compiled here once.
install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m compileall -q twin devices

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q twin devices

# Installs the system packages the tests use when some are missing (needs root).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing (run as root or: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

run: install
	$(BIN)/minimeter run $(ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-test
	$(BIN)/mypy

pytest: install-test system-deps
	$(BIN)/pytest
	$(BIN)/pytest hil_tests --target twin -p no:cacheprovider \
	  --junitxml build/hil/junit.xml --hil-report build/hil/report.md

test: install-test system-deps lint typecheck pytest

# The Modbus fuzz suite at full size (100,000 frames per transport: TCP, TLS, RTU), the
# load bench, the crash rig at 60 SIGKILLs (make test: 5) and the disk and outage tests
# with their figures; figures go to soak-figures.jsonl (quoted in docs/reliability.md).
soak: install-test system-deps
	MM_FUZZ_FRAMES=100000 MM_FUZZ_REPORT=soak-figures.jsonl $(BIN)/pytest -p no:cacheprovider \
	  -o timeout=7200 -s -q tests/modbus/test_fuzz.py
	$(BIN)/python bench/bench_modbus_load.py
	MM_CRASH_KILLS=60 MM_CRASH_REPORT=soak-figures.jsonl $(BIN)/pytest -p no:cacheprovider \
	  -o timeout=1800 -s -q tests/reliability/test_crash.py
	$(BIN)/pytest -p no:cacheprovider -s -q tests/reliability/test_disk.py \
	  tests/reliability/test_outages.py

docs: install
	$(BIN)/minimeter registers --format md > docs/registers.md

bench: install-test system-deps
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
	find twin devices -name __pycache__ -prune -exec rm -rf {} +
