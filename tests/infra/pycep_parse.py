"""Parse Bicep files with pycep, the parser checkov's Bicep framework uses, and print JSON.

Run with the checkov virtualenv's Python (pycep is not in the app's virtualenv):

    .venv/checkov/bin/python tests/infra/pycep_parse.py FILE.bicep [...]

Prints {"<path>": {"ok": true, "template": {...}} | {"ok": false, "error": "..."}}. checkov
itself only lists a file it cannot parse (and exits 0); this says why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(paths: list[str]) -> int:
    # The same parser settings as checkov.bicep.parser.Parser.
    parser = BicepParser(add_line_numbers=True)
    results: dict[str, object] = {}
    for path in paths:
        try:
            template = parser.parse(text=Path(path).read_text(encoding="utf-8"))
        except Exception as error:
            results[path] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        else:
            results[path] = {"ok": True, "template": template}
    json.dump(results, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
