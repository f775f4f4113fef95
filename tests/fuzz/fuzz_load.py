"""atheris fuzzer for Snapshot.load: heapscope's binary format and pickles.

Every input must either load into a snapshot that survives everything it
offers (statistics in every mode, compare_to, filter_traces: see
snapshot_file.exercise) or raise SnapshotFileError; anything else (another
exception, a crash, a hang) is a finding. Half of the
inputs that start with heapscope's magic get their header's payload size and
checksum fixed up first, so that mutations reach the section parser instead
of stopping at the checksum.

    python tests/fuzz/fuzz_load.py tests/fuzz/corpus -max_total_time=30
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import heapscope

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from snapshot_file import exercise, with_valid_checksum  # noqa: E402


PATH = os.path.join(tempfile.mkdtemp(prefix='heapscope-fuzz-'), 'input')


def test_one_input(data):
    if data[:1] and data[0] & 1:
        data = with_valid_checksum(data[1:])
    with open(PATH, 'wb') as fp:
        fp.write(data)
    try:
        snapshot = heapscope.Snapshot.load(PATH)
    except heapscope.SnapshotFileError:
        return
    # A snapshot that loads must be whole and usable: nothing it offers
    # may fail later.
    exercise(snapshot, heapscope)


def main():
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == '__main__':
    main()
