"""Builds a test's C fixture library, once per way of linking it.

The relocation-slot tests (test_call_slots.py, test_native.py) load the same
source linked three ways, and twice more for libraries loaded after start().
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, Sequence

import pytest

# How each variant is linked: lazy binding (JUMP_SLOT, writable .got.plt),
# full RELRO (slots read-only after relocation), -fno-plt (GLOB_DAT slots,
# read-only too).
VARIANTS = {
    "lazy": [],
    "relro_now": ["-Wl,-z,relro,-z,now"],
    "noplt": ["-fno-plt", "-Wl,-z,relro,-z,now"],
}


def compiler(what: str = "the fixture library") -> str:
    """The system C compiler; skips the test when there is none."""
    found = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if found is None:
        pytest.skip(f"no C compiler (cc, gcc) to build {what}")
    return found


def build(tmp_path_factory, name: str, source: str, extra_flags: Sequence[str] = ()) -> Dict[str, str]:
    """Compiles `source` as lib<name>_<variant>.so for each variant, and as
    "late" and "late_from_c" (lazy binding), in a fresh directory; returns
    the paths by variant. Skips the test when there is no C compiler."""
    cc = compiler()
    directory = tmp_path_factory.mktemp(name)
    source_path = directory / "fixture.c"
    source_path.write_text(source)
    libs = {}
    for variant, flags in list(VARIANTS.items()) + [("late", []), ("late_from_c", [])]:
        path = directory / f"lib{name}_{variant}.so"
        subprocess.run(
            [cc, "-shared", "-fPIC", "-O1", *extra_flags, *flags, "-o", str(path),
             str(source_path), "-ldl", "-lpthread"],
            check=True,
        )
        libs[variant] = str(path)
    return libs
