#!/usr/bin/env python3
"""Re-pack zips so the same files give the same bytes (docs/deploy.md#reproducible-zips).

    zip-deterministic.py ZIP...

Entries sorted by name, every timestamp 1980-01-01 00:00, permissions 0755 for `bootstrap`
(and anything executable) and 0644 otherwise, no extra fields or comments, deflate level 9.
Each zip is replaced in place (written next to it, then renamed). Prints the SHA-256.
"""
import hashlib
import os
import sys
import zipfile

EPOCH = (1980, 1, 1, 0, 0, 0)


def repack(path: str) -> str:
    with zipfile.ZipFile(path) as src:
        entries = sorted(
            ((i.filename, i.external_attr >> 16, src.read(i)) for i in src.infolist() if not i.is_dir()),
            key=lambda e: e[0],
        )
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as dst:
        for name, mode, data in entries:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix: the mode bits below are honoured by Lambda
            executable = name == "bootstrap" or bool(mode & 0o111)
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for p in sys.argv[1:]:
        print(f"{repack(p)}  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
