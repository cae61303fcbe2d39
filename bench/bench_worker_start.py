"""What a worker process pays to import the flows, with and without compiled bytecode.

    .venv/bin/python bench/bench_worker_start.py [--runs 5]

These machines set ``PYTHONDONTWRITEBYTECODE=1``, so a module without a ``.pyc`` is compiled
again in every process. ``make setup`` compiles at install (``uv sync --compile-bytecode`` and
``compileall`` of our own packages); the "without" side points ``PYTHONPYCACHEPREFIX`` at an empty
folder, which hides those files, as a venv installed without them would. Runs alternate A B A B
so drift on a noisy machine hits both sides; CPU seconds are the child's user + system time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORT = "import flows.sync, flows.push"


def _run(env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT], cwd=ROOT, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        compiled = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        bare = {**compiled, "PYTHONPYCACHEPREFIX": empty}
        _run(compiled)  # warm the page cache for both
        results: dict[str, list[tuple[float, float]]] = {"compiled": [], "bare": []}
        for _ in range(args.runs):
            results["compiled"].append(_run(compiled))
            results["bare"].append(_run(bare))
    print(f"{IMPORT!r}, {args.runs} runs each, medians")
    med = {
        k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
        for k, v in results.items()
    }
    for name, (cpu, wall) in med.items():
        print(f"  {name:<9} cpu {cpu:6.2f} s   wall {wall:6.2f} s")
    print(f"  compiled/bare cpu ratio {med['compiled'][0] / med['bare'][0]:.2f}")


if __name__ == "__main__":
    main()
