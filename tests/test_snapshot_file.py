"""Snapshot.dump / Snapshot.load: heapscope's binary format, and what the
loader does with files that are not one (truncated, corrupted, foreign,
empty, from a newer version, hostile): always SnapshotFileError naming the
problem, never a crash, a hang or a partly loaded snapshot."""

import os
import pickle
import random
import struct
import sys

import pytest

import tracemalloc as cpython

heapscope = pytest.importorskip('heapscope')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fuzz'))
from snapshot_file import HEADER, MAGIC, checksum, exercise  # noqa: E402

KEY_MODES = [('traceback', False), ('lineno', False), ('filename', False),
             ('lineno', True), ('filename', True)]


def raw_traces(count=500, seed=0):
    rng = random.Random(seed)
    files = ['a.py', 'pkg/b.py', 'caf\u00e9.py', 'lone\ud800.py', '<unknown>']
    out = []
    for _ in range(count):
        frames = tuple((rng.choice(files), rng.randint(0, 50)) for _ in range(rng.randint(1, 4)))
        out.append((rng.choice([0, 0, 0, 389047]), rng.choice([8, 32, 100, 2 ** 40]),
                    frames, len(frames) + rng.choice([0, 9])))
    return out


def shown(rows):
    return [repr(r) for r in rows]


def write(tmp_path, data, name='snap'):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def encoded(payload, version=1, flags=0, limit=5, size=None, digest=None):
    return HEADER.pack(MAGIC, version, flags, limit,
                       len(payload) if size is None else size,
                       checksum(payload) if digest is None else digest) + payload


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def payload(filenames=(b'a.py',), frames=((0, 2),), tracebacks=((1, (0,)),),
            traces=((0, 8, 0),), runs=None, tail=b''):
    """A payload section by section (linenos zigzag-encoded by the caller)."""
    out = varint(len(filenames)) + b''.join(varint(len(f)) + f for f in filenames)
    out += varint(len(frames)) + b''.join(varint(f) + varint(l) for f, l in frames)
    out += varint(len(tracebacks)) + b''.join(
        varint(total) + varint(len(ids)) + b''.join(varint(i) for i in ids) for total, ids in tracebacks)
    out += varint(len(traces))
    if runs is None:
        runs = [(d, 1) for d, _, _ in traces]
    out += varint(len(runs)) + b''.join(varint(d) + varint(n) for d, n in runs)
    out += b''.join(varint(s) for _, s, _ in traces) + b''.join(varint(t) for _, _, t in traces)
    return out + tail


def test_dump_then_load_gives_the_same_snapshot(tmp_path):
    snap = heapscope.Snapshot(raw_traces(), 7)
    snap.dump(tmp_path / 'a')
    assert (tmp_path / 'a').read_bytes().startswith(MAGIC)
    loaded = heapscope.Snapshot.load(tmp_path / 'a')
    assert type(loaded) is heapscope.Snapshot and loaded.traceback_limit == 7
    assert loaded.traces == snap.traces
    assert list(loaded.traces._traces) == raw_traces()
    for mode in KEY_MODES:
        assert shown(loaded.statistics(*mode)) == shown(snap.statistics(*mode))


def test_a_handmade_payload_loads(tmp_path):
    loaded = heapscope.Snapshot.load(write(tmp_path, encoded(payload())))
    assert list(loaded.traces._traces) == [(0, 8, (('a.py', 1),), 1)]


def test_a_taken_snapshot_round_trips(tmp_path):
    heapscope.start(5)
    try:
        keep = [bytearray(300) for _ in range(100)]  # noqa: F841
        snap = heapscope.take_snapshot()
    finally:
        heapscope.stop()
    snap.dump(tmp_path / 'live')
    loaded = heapscope.Snapshot.load(tmp_path / 'live')
    assert loaded.traces == snap.traces and loaded.traceback_limit == 5
    assert shown(loaded.statistics('traceback')) == shown(snap.statistics('traceback'))


def test_our_file_is_at_most_half_the_size_of_cpythons_pickle(tmp_path):
    raw = raw_traces(20000, seed=3)
    heapscope.Snapshot(raw, 5).dump(tmp_path / 'ours')
    cpython.Snapshot(raw, 5).dump(tmp_path / 'theirs')
    assert os.path.getsize(tmp_path / 'ours') * 2 <= os.path.getsize(tmp_path / 'theirs')


def test_snapshots_our_format_cannot_hold_are_pickled(tmp_path):
    snap = heapscope.Snapshot(raw_traces(10), 5)
    snap.note = 'kept'
    snap.dump(tmp_path / 'p')
    loaded = heapscope.Snapshot.load(tmp_path / 'p')
    assert loaded.note == 'kept' and loaded.traces == snap.traces


def load_error(path):
    with pytest.raises(heapscope.SnapshotFileError) as info:
        heapscope.Snapshot.load(path)
    assert isinstance(info.value, pickle.UnpicklingError)
    return str(info.value)


def test_an_empty_file_is_named_empty(tmp_path):
    assert 'empty' in load_error(write(tmp_path, b''))


def test_every_truncation_is_reported(tmp_path):
    data = encoded(payload())
    heapscope.Snapshot(raw_traces(30), 5).dump(tmp_path / 'full')
    full = (tmp_path / 'full').read_bytes()
    for blob in (data, full):
        for cut in range(1, len(blob)):
            message = load_error(write(tmp_path, blob[:cut]))
            assert 'truncated' in message or 'magic' in message or 'not a heapscope' in message, (cut, message)


def test_every_bit_flip_is_caught(tmp_path):
    heapscope.Snapshot(raw_traces(20), 5).dump(tmp_path / 'full')
    full = (tmp_path / 'full').read_bytes()
    rng = random.Random(5)
    for position in range(len(full)):
        flipped = bytearray(full)
        flipped[position] ^= 1 << rng.randrange(8)
        if position in range(16, 24):  # traceback_limit: any value is valid
            continue
        load_error(write(tmp_path, bytes(flipped)))


def test_a_newer_version_is_named(tmp_path):
    message = load_error(write(tmp_path, encoded(payload(), version=2)))
    assert 'version 2 is newer' in message


@pytest.mark.parametrize('data', [b'hello world\n', b'\x89PNG\r\n\x1a\n' + bytes(30),
                                  b'\x1f\x8b\x08' + bytes(20), bytes(100), b'\x80\x04\x95',
                                  MAGIC, MAGIC + bytes(10)])
def test_foreign_files_are_rejected(tmp_path, data):
    load_error(write(tmp_path, data))


HOSTILE = {
    'huge filename count': payload()[:0] + varint(2 ** 62),
    'huge trace count': payload(traces=())[:-2] + varint(2 ** 40) + b'\x00',
    'filename id out of range': payload(frames=((5, 2),)),
    'frame id out of range': payload(tracebacks=((1, (3,)),)),
    'traceback id out of range': payload(traces=((0, 8, 4),)),
    'invalid utf-8 filename': payload(filenames=(b'\xff\xfe',)),
    'duplicate filename': payload(filenames=(b'a', b'a')),
    'duplicate frame': payload(frames=((0, 2), (0, 2))),
    'domain runs short': payload(traces=((0, 8, 0), (0, 8, 0)), runs=[(0, 1)]),
    'domain runs long': payload(runs=[(0, 5)]),
    'zero-length run': payload(runs=[(0, 0), (0, 1)]),
    'domain too large': payload(traces=((2 ** 33, 8, 0),)),
    'oversized varint': payload()[:-1] + b'\xff' * 11 + b'\x01',
    'trailing bytes': payload(tail=b'\x00'),
    'traceback deeper than the file': payload(tracebacks=((1, (0,) * 3),))[:12],
}


@pytest.mark.parametrize('name', sorted(HOSTILE))
def test_hostile_payloads_with_valid_checksums_are_rejected(tmp_path, name):
    message = load_error(write(tmp_path, encoded(HOSTILE[name])))
    assert 'corrupt snapshot file' in message or 'truncated' in message


def test_header_lies_are_rejected(tmp_path):
    body = payload()
    assert 'unknown flags' in load_error(write(tmp_path, encoded(body, flags=2)))
    # flag 1 (sampled) announces an interval first, and 0 is not one
    assert 'sampling interval of 0' in load_error(write(tmp_path, encoded(b'\x00' + body, flags=1)))
    assert 'truncated' in load_error(write(tmp_path, encoded(body, size=len(body) + 1)))
    assert 'trailing' in load_error(write(tmp_path, encoded(body, size=len(body) - 1)))
    assert 'checksum' in load_error(write(tmp_path, encoded(body, digest=1)))
    assert 'version 0' in load_error(write(tmp_path, encoded(body, version=0)))


def test_pickles_that_reference_other_globals_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    message = load_error(write(tmp_path, pickle.dumps(Evil())))
    assert 'not allowed' in message


def test_truncated_cpython_pickles_are_reported(tmp_path):
    cpython.Snapshot(raw_traces(20), 5).dump(tmp_path / 'p')
    data = (tmp_path / 'p').read_bytes()
    for cut in range(1, len(data), 7):
        load_error(write(tmp_path, data[:cut]))


@pytest.mark.parametrize('data', [
    b'\x80\x04' + b'r' + (300_000_000).to_bytes(4, 'little') + b'.',   # LONG_BINPUT far away
    b'\x80\x04' + b'p900000000\n.',                                      # PUT, protocol 0 style
    b'\x80\x05' + b'\x8e' + (2 ** 40).to_bytes(8, 'little') + b'ab.',   # BINBYTES8 of 1 TiB
    b'\x80\x04\x95' + (2 ** 33).to_bytes(8, 'little') + b'N.',          # FRAME beyond the file
    b'\x80\x04' + b'X' + (2 ** 31).to_bytes(4, 'little') + b'a.',       # BINUNICODE of 2 GiB
])
def test_pickles_announcing_huge_sizes_are_refused_before_unpickling(tmp_path, data):
    message = load_error(write(tmp_path, data))
    assert 'beyond the size of the file' in message or 'longer than the file' in message


def _framed(body):
    return b'\x95' + len(body).to_bytes(8, 'little') + body


@pytest.mark.parametrize('data', [
    # a frame inside a frame: the file-reading C unpickler would read the
    # inner one from the file position, past the outer frame's rest
    b'\x80\x04' + _framed(_framed(b'N.')),
    # BININT2 whose argument runs past the end of its frame
    b'\x80\x04' + _framed(b'M\x01') + b'\x00.',
])
def test_pickle_frames_that_the_unpickler_would_misread_are_refused(tmp_path, data):
    assert 'frame' in load_error(write(tmp_path, data))


def test_well_framed_pickles_still_load(tmp_path):
    for protocol in (4, 5):
        with open(tmp_path / 'p', 'wb') as fp:
            pickle.dump(cpython.Snapshot(raw_traces(300), 5), fp, protocol)
        assert len(heapscope.Snapshot.load(tmp_path / 'p').traces) == 300


def test_the_fuzzers_regression_inputs_are_refused(tmp_path):
    corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fuzz', 'corpus')
    for name in sorted(os.listdir(corpus)):
        if name.startswith('regress-'):
            load_error(os.path.join(corpus, name))


# --- round trips, and files that load but could not be analysed -----------

def sampled_snapshot(traces, interval=524288, limit=5):
    core = heapscope._heapscope._core_from_raw(traces, interval)
    assert core is not None
    return heapscope._snapshot._snapshot_on(core, limit)


def usable(snapshot):
    exercise(snapshot, heapscope)


HUGE_EXACT = [(0, 2 ** 63 - 1, (('a.py', 1),), 1), (0, 2 ** 64 - 1, (('a.py', 1), ('b.py', 2)), 2),
              (1, 2 ** 63, (('b.py', 2),), 1)]
HUGE_SAMPLED = [(0, 2 ** 50, (('a.py', 1),), 1), (0, 1, (('b.py', 2),) * 100, 100)]


@pytest.mark.parametrize('kind', ['exact', 'sampled', 'empty exact', 'empty sampled',
                                  'huge exact', 'huge sampled', 'deep sampled'])
def test_what_dump_writes_load_reads(tmp_path, kind):
    snapshot = {
        'exact': lambda: heapscope.Snapshot(raw_traces(), 7),
        'sampled': lambda: sampled_snapshot(raw_traces()),
        'empty exact': lambda: heapscope.Snapshot([], 1),
        'empty sampled': lambda: sampled_snapshot([]),
        'huge exact': lambda: heapscope.Snapshot(HUGE_EXACT, 3),
        'huge sampled': lambda: sampled_snapshot(HUGE_SAMPLED, 2 ** 40),
        'deep sampled': lambda: sampled_snapshot(
            [(0, 64, tuple(('f%d.py' % i, i) for i in range(1000)), 5000)], 1024),
    }[kind]()
    snapshot.dump(tmp_path / 'snap')
    loaded = heapscope.Snapshot.load(tmp_path / 'snap')
    assert loaded.sample_interval == snapshot.sample_interval
    assert loaded.traceback_limit == snapshot.traceback_limit
    assert loaded.traces == snapshot.traces
    for mode in KEY_MODES:
        assert shown(loaded.statistics(*mode)) == shown(snapshot.statistics(*mode))
        assert shown(loaded.compare_to(snapshot, *mode)) == shown(
            snapshot.compare_to(snapshot, *mode))
    usable(loaded)


@pytest.mark.parametrize('name', ['with space.hsnap', 'caf\u00e9 \u2603.hsnap', 'new\nline',
                                  '-starts-with-dash', '.hidden', 'no-extension', "quote'\"s"])
@pytest.mark.parametrize('as_type', [str, bytes, 'path'])
def test_odd_filenames_round_trip(tmp_path, name, as_type):
    path = tmp_path / name
    path = {str: str, bytes: os.fsencode, 'path': lambda p: p}[as_type](path)
    for snapshot in (heapscope.Snapshot(raw_traces(20), 2), sampled_snapshot(raw_traces(20))):
        snapshot.dump(path)
        loaded = heapscope.Snapshot.load(path)
        assert loaded.traces == snapshot.traces
        assert loaded.sample_interval == snapshot.sample_interval


def sampled_payload(interval, sizes, depth=1):
    frames = tuple((0, 2 * k) for k in range(depth))
    return varint(interval) + payload(frames=frames, tracebacks=((depth, tuple(range(depth))),),
                                      traces=tuple((0, size, 0) for size in sizes))


@pytest.mark.parametrize('interval, sizes, depth', [
    (524288, [2 ** 63 - 5], 1),             # the fuzzer's find: one block near 2^63
    (524288, [2 ** 64 - 1], 1),
    (524288, [2 ** 62, 2 ** 62], 1),         # each fits, their sum does not
    (2 ** 64 - 1, [1], 1),                   # one block standing for 2^64 blocks
    (4096, [2 ** 56], 64),                   # counted once per frame: 2^62
])
def test_a_sampled_file_whose_estimates_cannot_be_computed_is_refused_at_load(
        tmp_path, interval, sizes, depth):
    message = load_error(write(tmp_path, encoded(sampled_payload(interval, sizes, depth),
                                                 flags=1)))
    assert 'estimated' in message and '2^61' in message


def test_a_sampled_file_just_within_the_bounds_loads_and_is_usable(tmp_path):
    loaded = heapscope.Snapshot.load(write(tmp_path, encoded(
        sampled_payload(524288, [2 ** 60, 2 ** 59, 2 ** 58], 1), flags=1)))
    assert loaded.sample_interval == 524288
    usable(loaded)


def test_a_sample_beyond_the_bounds_is_never_built_nor_written(tmp_path):
    assert heapscope._heapscope._core_from_raw([(0, 2 ** 63 - 5, (('a.py', 1),), 1)],
                                               524288) is None
    exact = heapscope.Snapshot([(0, 2 ** 63 - 5, (('a.py', 1),), 1)], 1)
    exact.dump(tmp_path / 'exact')  # an exact snapshot sums in Python's ints
    usable(heapscope.Snapshot.load(tmp_path / 'exact'))


def test_every_corpus_file_that_loads_is_usable():
    corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fuzz', 'corpus')
    loaded = 0
    for name in sorted(os.listdir(corpus)):
        try:
            snapshot = heapscope.Snapshot.load(os.path.join(corpus, name))
        except heapscope.SnapshotFileError:
            continue
        usable(snapshot)
        loaded += 1
    assert loaded >= 5


@pytest.mark.parametrize('data', [b'hello world\n', b'Memo', bytes(100), b'{"json": 1}',
                                  b'\x89PNG\r\n\x1a\n' + bytes(30), b'h' + bytes(200)])
def test_a_file_of_neither_format_says_so(tmp_path, data):
    message = load_error(write(tmp_path, data))
    assert 'neither a heapscope snapshot nor a tracemalloc pickle' in message
    assert 'Memo' not in message.split('(it starts with')[0]


def test_an_endless_file_of_neither_format_is_refused_without_reading_it():
    if not os.path.exists('/dev/zero'):
        pytest.skip('no /dev/zero on this system')
    assert 'neither' in load_error('/dev/zero')


def test_a_damaged_pickle_still_names_the_pickle_problem(tmp_path):
    data = pickle.dumps(cpython.Snapshot(raw_traces(5), 1), 2)
    message = load_error(write(tmp_path, data[:60]))
    assert 'not a readable tracemalloc pickle' in message


@pytest.mark.parametrize('length', [1, 3, 7])
def test_a_file_cut_inside_the_magic_is_read_as_our_format(tmp_path, length):
    message = load_error(write(tmp_path, MAGIC[:length]))
    assert 'not a heapscope snapshot file' in message and 'pickle' not in message
