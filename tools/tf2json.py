#!/usr/bin/env python3
"""Parse every Terraform file under a directory with python-hcl2 and print one JSON document.

    tf2json.py [DIR]   (default: infra)

Output: {"files": {"<path relative to the repo>": <parsed>, ...},
         "errors": [{"file": ..., "error": ...}, ...]}

Strings come without their surrounding quotes (the pre-8 python-hcl2 shape): a literal is its
text, an expression is "${...}". Block markers and comments are dropped. Exit status 1 when a
file does not parse, so a syntax error fails the check that runs this (tools/iac-check.sh,
crates/iac-check) and names the file.
"""
import json
import os
import sys

import hcl2
from hcl2 import SerializationOptions

OPTIONS = SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    strip_string_quotes=True,
    preserve_heredocs=False,
)


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "infra"
    files, errors = {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        # .terraform/ holds downloaded providers and modules, not ours.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".tf"):
                continue
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    files[path] = hcl2.load(f, serialization_options=OPTIONS)
            except Exception as e:  # noqa: BLE001 - any parse failure is reported by file
                errors.append({"file": path, "error": f"{type(e).__name__}: {e}"})
    json.dump({"files": files, "errors": errors}, sys.stdout, indent=None, sort_keys=True)
    sys.stdout.write("\n")
    for e in errors:
        print(f"tf2json: {e['file']}: {e['error']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
