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

$(VENV): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked
	touch $@

demo: $(VENV)
	.venv/bin/crmsync demo

test: $(VENV)
	.venv/bin/pytest

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy crmsync connectors models tasks flows deployments sandbox

bench: $(VENV)
	.venv/bin/python bench/bench_servicetitan.py

# The heavy proofs of README "Proof" (about 30 minutes on 2 cores); CI runs the small-scale checks.
proof: $(VENV)
	.venv/bin/python bench/proof_scale.py --tenants 1000 --jobs 20
	.venv/bin/python bench/proof_throughput.py --records 100000,1000000
	.venv/bin/python bench/proof_faults.py

clean:
	rm -rf .venv .tools .crmsync
