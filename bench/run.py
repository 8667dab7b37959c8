"""The `make bench` driver: run every bench/bench_*.py (or the named ones) and print their output.

    python bench/run.py                       # every benchmark, full size
    python bench/run.py gather --feeds 50     # one benchmark; options after the names go to it

Each benchmark runs in its own process, one after another (they time things: never in parallel).
The exit status is the first non-zero status a benchmark returned.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    cut = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:cut], argv[cut:]
    available = {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}
    unknown = [n for n in names if n.removeprefix("bench_") not in available]
    if unknown:
        print(f"bench: no benchmark named {', '.join(unknown)} (have: {', '.join(available)})", file=sys.stderr)
        return 2
    chosen = [available[n.removeprefix("bench_")] for n in names] or list(available.values())
    status = 0
    for script in chosen:
        print(f"\n### {script.name} {' '.join(options)}".rstrip(), flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script), *options], cwd=HERE.parent)
        print(f"### {script.name}: exit {code} after {time.monotonic() - started:.0f}s", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
