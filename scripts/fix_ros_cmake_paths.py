"""Rewrite the ROS 2 wheels' hard-coded build paths in the venv's exported CMake files.

The PyPI ROS 2 wheels were built under /opt/python/cp311-cp311; their exported targets name that
interpreter's include dir and numpy include dir, so building an interface package fails with
"Imported target ... includes non-existent path". Idempotent: only rewrites what still matches.
"""

import sys
import sysconfig
from pathlib import Path

import numpy

OLD_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
OLD_NUMPY = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(venv: str) -> int:
    new_include = sysconfig.get_paths()["include"]
    new_numpy = numpy.get_include()
    changed = 0
    for f in Path(venv, "share").glob("*/cmake/*.cmake"):
        text = f.read_text()
        if OLD_INCLUDE not in text and OLD_NUMPY not in text:
            continue
        f.write_text(text.replace(OLD_NUMPY, new_numpy).replace(OLD_INCLUDE, new_include))
        changed += 1
    print(f"[setup] ROS CMake path fix: {changed} file(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
