"""What `import function_app` costs next to the bare `import azure.functions,
azure.durable_functions` it cannot do without (issue 11: at most 1.5 times as much).

    .venv/bin/python bench/import_bench.py [--runs 15]

Each import runs `--runs` times in a fresh interpreter, the two in turn, with `-X importtime`:
a run's figure is the sum of the cumulative times of what the statement imported (the
interpreter's own start-up left out). Prints the median milliseconds of each and their ratio,
and JSON on its last line. Not a test: nothing gates on time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE = "import azure.functions, azure.durable_functions"
APP = "import function_app"
MARK = "-- import_bench --"
# `import time: self [us] | cumulative | name`; a top-level import's name is not indented.
LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def import_ms(statement: str) -> float:
    """Milliseconds `statement` spends importing, by -X importtime, in a fresh interpreter."""
    code = f"import sys; print({MARK!r}, file=sys.stderr, flush=True); {statement}"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stderr.splitlines()
    after = lines[lines.index(MARK) + 1 :]
    return sum(int(m[1]) for m in map(LINE.match, after) if m) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import_ms(APP)  # a warm-up: the page cache and .pyc files
    bare, app = [], []
    for _ in range(args.runs):
        bare.append(import_ms(BARE))
        app.append(import_ms(APP))
    figures = {
        "runs": args.runs,
        "bare_ms": round(statistics.median(bare), 1),
        "function_app_ms": round(statistics.median(app), 1),
        "ratio": round(statistics.median(a / b for a, b in zip(app, bare, strict=True)), 2),
    }
    print(f"{BARE:50} {figures['bare_ms']:7.1f} ms (median of {args.runs})")
    print(f"{APP:50} {figures['function_app_ms']:7.1f} ms")
    print(f"{'ratio (median of the pairs)':50} {figures['ratio']:7.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
