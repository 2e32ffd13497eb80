#!/usr/bin/env python3
"""Fails when a crate declares a dependency its sources never name (`make lint`, CI).

What cargo-machete does, by the same rule (a dependency is used when its crate name, with `-`
as `_`, appears as a word in the crate's .rs files or build.rs). Hand-written because
installing cargo-machete compiles ~90 crates on every cold CI run, and this takes 0.1 s.
A dependency needed only to switch on a feature of another one can be kept by listing it in
the crate's Cargo.toml under [package.metadata.unused-deps] ignore = ["name"].
"""
import pathlib
import re
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
workspace = tomllib.loads((root / "Cargo.toml").read_text())
problems = []
for member in workspace["workspace"]["members"]:
    for manifest in sorted(root.glob(f"{member}/Cargo.toml")):
        crate = manifest.parent
        doc = tomllib.loads(manifest.read_text())
        ignore = set(
            doc.get("package", {}).get("metadata", {}).get("unused-deps", {}).get("ignore", [])
        )
        text = "\n".join(
            p.read_text(errors="replace")
            for p in crate.rglob("*.rs")
            if "target" not in p.relative_to(crate).parts
        )
        for section in ("dependencies", "dev-dependencies", "build-dependencies"):
            for name in doc.get(section, {}):
                ident = name.replace("-", "_")
                if name in ignore or re.search(rf"\b{re.escape(ident)}\b", text):
                    continue
                problems.append(f"{crate.relative_to(root)}/Cargo.toml [{section}] {name}")
if problems:
    print("unused dependencies (remove them, or list them in [package.metadata.unused-deps] ignore):")
    print("\n".join(f"  {p}" for p in problems))
    sys.exit(1)
print("unused-deps: every declared dependency is used")
