# Two commands on a fresh machine with python3 and make:  `make demo`  and  `make test`.
PYTHON ?= python3
UV_VERSION := 0.9.30
UV := .tools/bin/uv
VENV := .venv/.synced

.PHONY: demo test lint bench proof clean setup

setup: $(VENV)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled here, once: these machines set PYTHONDONTWRITEBYTECODE, so without it every
# worker process compiled ~1,100 modules at start (see README, Benchmarks: worker start).
$(VENV): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --compile-bytecode
	.venv/bin/python -m compileall -q -j 0 connectors crmsync flows tasks models deployments ops sandbox
	touch $@

demo: $(VENV)
	.venv/bin/crmsync demo

test: $(VENV)
	.venv/bin/pytest

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy crmsync connectors models tasks flows deployments ops sandbox
	.venv/bin/lint-imports

bench: $(VENV)
	.venv/bin/python bench/bench_servicetitan.py

# The heavy proofs of README "Proof" (about 30 minutes on 2 cores); CI runs the small-scale checks.
proof: $(VENV)
	.venv/bin/python bench/proof_scale.py --tenants 1000 --jobs 20
	.venv/bin/python bench/proof_throughput.py --records 100000,1000000
	.venv/bin/python bench/proof_faults.py

clean:
	rm -rf .venv .tools .crmsync
