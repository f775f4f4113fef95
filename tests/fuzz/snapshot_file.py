"""heapscope's snapshot file header and checksum in Python, for crafting
test and fuzz inputs (src/core/snapshot/file_format.{h,cc} is the real one),
and what every snapshot that loads must then survive."""

import struct

MAGIC = b'\x89HSNAP\r\n'
HEADER = struct.Struct('<8sIIqQQ')
MASK = (1 << 64) - 1


def checksum(payload):
    """src/core/snapshot/file_format.cc checksum(), in Python."""
    mul = 0x9E3779B97F4A7C15
    h = 0xC2B2AE3D27D4EB4F ^ ((len(payload) * mul) & MASK)
    i = 0
    while i + 8 <= len(payload):
        word = int.from_bytes(payload[i:i + 8], 'little')
        h = ((h ^ ((word * mul) & MASK)) * 0xBF58476D1CE4E5B9) & MASK
        h ^= h >> 29
        i += 8
    tail = int.from_bytes(payload[i:], 'little')
    h = ((h ^ ((tail * mul) & MASK)) * 0xBF58476D1CE4E5B9) & MASK
    h ^= h >> 31
    h = (h * 0x94D049BB133111EB) & MASK
    return h ^ (h >> 32)


def with_valid_checksum(data):
    if len(data) < HEADER.size or not data.startswith(MAGIC):
        return data
    magic, version, flags, limit, _, _ = HEADER.unpack_from(data)
    payload = data[HEADER.size:]
    return HEADER.pack(magic, version, flags, limit, len(payload), checksum(payload)) + payload


KEY_MODES = [('traceback', False), ('lineno', False), ('filename', False),
             ('lineno', True), ('filename', True)]


def exercise(snapshot, heapscope):
    """Run everything a loaded snapshot offers once: a file that load()
    accepts must never fail later (statistics in every mode, compare_to,
    filter_traces, the traces themselves)."""
    for mode in KEY_MODES:
        snapshot.statistics(*mode)
        snapshot.compare_to(snapshot, *mode)
    kept = snapshot.filter_traces([heapscope.Filter(False, 'a.py'),
                                   heapscope.Filter(True, '*', all_frames=True)])
    kept.statistics('filename', True)
    kept.compare_to(snapshot, 'lineno')
    snapshot.compare_to(kept, 'traceback')
    snapshot.filter_traces([heapscope.DomainFilter(False, 0)]).statistics('traceback')
    for trace in snapshot.traces:
        trace.traceback
