"""heapscope.export: pprof, collapsed stacks and speedscope files of a snapshot.

The snapshots come from real tracing of a small program whose path holds
spaces, a semicolon and non-ASCII letters; every expectation is computed
from that snapshot's own statistics, never written down by hand.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import heapscope
from heapscope._source import function_name
from heapscope.export import FORMATS, export, render

PROGRAM = textwrap.dedent('''\
    import sys
    import heapscope

    class Store:
        def grow(self, n):
            blocks = []
            for _ in range(n):
                blocks.append(bytearray(1024))  # ALLOC_BLOCKS
            return blocks

    def build_store():
        return Store().grow(40)  # CALL_GROW

    def make_strings():
        return ['x' * 500 + str(i) for i in range(30)]  # ALLOC_STRINGS

    heapscope.start(10)
    kept = (build_store(), make_strings())  # CALL_BUILD
    snapshot = heapscope.take_snapshot()
    heapscope.stop()
    snapshot.dump(sys.argv[1])
''')


def _marker_line(marker):
    return next(lineno for lineno, line in enumerate(PROGRAM.splitlines(), 1)
                if line.endswith('# ' + marker))


@pytest.fixture(scope='module')
def program(tmp_path_factory):
    directory = tmp_path_factory.mktemp('export') / 'odd dir; é'
    directory.mkdir()
    path = directory / 'prog ü;x.py'
    path.write_text(PROGRAM, encoding='utf-8')
    return str(path)


@pytest.fixture(scope='module')
def snapshot(program):
    dump = os.path.join(os.path.dirname(program), 'snapshot.heapscope')
    subprocess.run([sys.executable, program, dump], check=True, timeout=60)
    return heapscope.Snapshot.load(dump)


def _totals(snapshot):
    stats = snapshot.statistics('traceback')
    return sum(stat.size for stat in stats), sum(stat.count for stat in stats)


def _leaf_first(traceback):
    return tuple((frame.filename, frame.lineno) for frame in reversed(traceback))


def _expected_stacks(snapshot):
    """{leaf-first frames: (size, count)} from the snapshot's statistics."""
    return {_leaf_first(stat.traceback): (stat.size, stat.count)
            for stat in snapshot.statistics('traceback')}


def test_the_program_allocates_where_its_markers_say(snapshot, program):
    leaves = {stack[0] for stack in _expected_stacks(snapshot)}
    assert (program, _marker_line('ALLOC_BLOCKS')) in leaves
    assert (program, _marker_line('ALLOC_STRINGS')) in leaves


def test_unknown_format_names_the_choices(snapshot, tmp_path):
    with pytest.raises(ValueError) as error:
        export(snapshot, 'svg', str(tmp_path / 'out'))
    for fmt in FORMATS:
        assert fmt in str(error.value)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('fmt', FORMATS)
def test_export_writes_what_render_returns(snapshot, tmp_path, fmt):
    path = tmp_path / ('out.' + fmt)
    export(snapshot, fmt, str(path))
    assert path.read_bytes() == render(snapshot, fmt)


# --- pprof, read back by a protobuf decoder written here -----------------

def _varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(data):
    """{field number: [int or bytes, ...]} of one message (varint and length-delimited only)."""
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = bytes(data[pos:pos + length]), pos + length
        else:
            raise AssertionError('unexpected wire type %d' % wire_type)
        fields.setdefault(field, []).append(value)
    return fields


def _packed(values):
    """A repeated integer field, whether it came packed or not."""
    result = []
    for value in values:
        if isinstance(value, bytes):
            pos = 0
            while pos < len(value):
                number, pos = _varint(value, pos)
                result.append(number)
        else:
            result.append(value)
    return result


def _one(fields, number, default=0):
    return fields.get(number, [default])[-1]


class DecodedProfile:
    def __init__(self, data):
        assert data[:2] == b'\x1f\x8b', 'not gzipped'
        profile = _fields(gzip.decompress(data))
        self.strings = [text.decode('utf-8') for text in profile.get(6, [])]
        assert self.strings[0] == ''
        self.sample_types = [self._value_type(message) for message in profile.get(1, [])]
        self.default_sample_type = self.strings[_one(profile, 14)]
        self.period_type = self._value_type(_one(profile, 11, b''))
        self.period = _one(profile, 12)
        self.comments = [self.strings[index] for index in _packed(profile.get(13, []))]
        functions = {}
        for message in profile.get(5, []):
            function = _fields(message)
            functions[_one(function, 1)] = (self.strings[_one(function, 2)],
                                            self.strings[_one(function, 4)])
        self.locations = {}  # id -> (function name, filename, line)
        for message in profile.get(4, []):
            location = _fields(message)
            lines = [_fields(line) for line in location.get(4, [])]
            assert len(lines) == 1
            name, filename = functions[_one(lines[0], 1)]
            self.locations[_one(location, 1)] = (name, filename, _one(lines[0], 2))
        self.samples = []  # (location ids, values, {label: num})
        for message in profile.get(2, []):
            sample = _fields(message)
            labels = {}
            for label in sample.get(3, []):
                label = _fields(label)
                labels[self.strings[_one(label, 1)]] = _one(label, 3)
            self.samples.append((_packed(sample.get(1, [])),
                                 _packed(sample.get(2, [])), labels))

    def _value_type(self, message):
        fields = _fields(message)
        return self.strings[_one(fields, 1)], self.strings[_one(fields, 2)]

    def stacks(self):
        """{leaf-first (filename, line) frames: {sample type: value}}."""
        result = {}
        for location_ids, values, _ in self.samples:
            frames = tuple(self.locations[id_][1:] for id_ in location_ids)
            assert frames not in result
            result[frames] = dict(zip((type_ for type_, _ in self.sample_types), values))
        return result


def test_pprof_declares_in_use_objects_and_space(snapshot):
    profile = DecodedProfile(render(snapshot, 'pprof'))
    assert profile.sample_types == [('inuse_objects', 'count'), ('inuse_space', 'bytes')]
    assert profile.default_sample_type == 'inuse_space'
    assert profile.period == 0  # exact snapshot: no sampling period


def test_pprof_has_one_sample_per_traceback_with_its_size_and_count(snapshot):
    profile = DecodedProfile(render(snapshot, 'pprof'))
    expected = {frames: {'inuse_space': size, 'inuse_objects': count}
                for frames, (size, count) in _expected_stacks(snapshot).items()}
    assert profile.stacks() == expected
    size, count = _totals(snapshot)
    assert sum(values[1] for _, values, _ in profile.samples) == size
    assert sum(values[0] for _, values, _ in profile.samples) == count


def test_pprof_locations_name_the_enclosing_functions(snapshot, program):
    profile = DecodedProfile(render(snapshot, 'pprof'))
    for name, filename, line in profile.locations.values():
        expected = function_name(filename, line)
        if expected == '<module>':
            expected = '<module> (%s)' % os.path.basename(filename)
        assert name == expected
    blocks = next(ids for ids, _, _ in profile.samples
                  if profile.locations[ids[0]][1:] == (program, _marker_line('ALLOC_BLOCKS')))
    names = [profile.locations[id_][0] for id_ in blocks]
    # Leaf first, as pprof wants: the allocating method, its caller, the script.
    assert names[:3] == ['Store.grow', 'build_store',
                         '<module> (%s)' % os.path.basename(program)]
    assert [profile.locations[id_][2] for id_ in blocks[:3]] == [
        _marker_line('ALLOC_BLOCKS'), _marker_line('CALL_GROW'), _marker_line('CALL_BUILD')]


def test_pprof_of_the_same_snapshot_is_the_same_bytes(snapshot):
    assert render(snapshot, 'pprof') == render(snapshot, 'pprof')


class _SampledView:
    """A snapshot seen as a sampled one: interval and 95 % bounds added."""

    class Stat:
        def __init__(self, stat):
            self.traceback, self.size, self.count = stat.traceback, stat.size, stat.count
            self.size_ci = (stat.size * 0.5, stat.size * 1.5)
            self.count_ci = (stat.count // 2, stat.count * 2)

    def __init__(self, snapshot, interval):
        self._snapshot = snapshot
        self.sample_interval = interval
        self.traceback_limit = snapshot.traceback_limit

    def statistics(self, key_type, cumulative=False):
        return [self.Stat(stat) for stat in self._snapshot.statistics(key_type, cumulative)]


def test_pprof_of_a_sampled_snapshot_records_interval_and_bounds(snapshot):
    sampled = _SampledView(snapshot, 4096)
    profile = DecodedProfile(render(sampled, 'pprof'))
    assert profile.period_type == ('space', 'bytes')
    assert profile.period == 4096
    assert any('4096' in comment for comment in profile.comments)
    stats = {_leaf_first(stat.traceback): stat for stat in sampled.statistics('traceback')}
    for location_ids, values, labels in profile.samples:
        stat = stats[tuple(profile.locations[id_][1:] for id_ in location_ids)]
        assert values == [stat.count, stat.size]
        assert labels == {
            'inuse_space_ci_low': round(stat.size_ci[0]),
            'inuse_space_ci_high': round(stat.size_ci[1]),
            'inuse_objects_ci_low': stat.count_ci[0],
            'inuse_objects_ci_high': stat.count_ci[1],
        }


# --- pprof, read by pprof itself ----------------------------------------

def _go():
    return shutil.which('go') or ('/usr/bin/go' if os.path.exists('/usr/bin/go') else None)


@pytest.fixture(scope='module')
def go_pprof(tmp_path_factory):
    go = _go()
    if go is None:
        pytest.skip('go not installed (apt-get install golang-go)')
    home = tmp_path_factory.mktemp('gohome')
    env = dict(os.environ, HOME=str(home), GOCACHE=str(home / 'cache'),
               GOPATH=str(home / 'path'), GOFLAGS='', GO111MODULE='off')

    def run(*args):
        result = subprocess.run([go, 'tool', 'pprof'] + list(args), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=120)
        assert result.returncode == 0, result.stderr.decode(errors='replace')
        return result.stdout.decode('utf-8', 'replace')
    return run


def _raw_samples(raw):
    """[(inuse_objects, inuse_space, location ids)] from `pprof -raw` output."""
    lines = raw.splitlines()
    start = lines.index('Samples:') + 2  # after the header of sample types
    samples = []
    for line in lines[start:lines.index('Locations')]:
        values, _, ids = line.partition(':')
        objects, space = (int(value) for value in values.split())
        samples.append((objects, space, [int(id_) for id_ in ids.split()]))
    return samples


def test_go_pprof_reads_samples_totals_and_names(snapshot, program, go_pprof, tmp_path):
    path = tmp_path / 'heap.pb.gz'
    export(snapshot, 'pprof', str(path))
    raw = go_pprof('-raw', str(path))
    assert 'inuse_space/bytes[dflt]' in raw
    samples = _raw_samples(raw)
    size, count = _totals(snapshot)
    assert sum(space for _, space, _ in samples) == size
    assert sum(objects for objects, _, _ in samples) == count
    # The odd file name survives, next to the function and line.
    assert 'Store.grow %s:%d' % (program, _marker_line('ALLOC_BLOCKS')) in raw
    assert 'make_strings %s:%d' % (program, _marker_line('ALLOC_STRINGS')) in raw


def test_go_pprof_top_ranks_our_functions(snapshot, go_pprof, tmp_path):
    path = tmp_path / 'heap.pb.gz'
    export(snapshot, 'pprof', str(path))
    top = go_pprof('-top', '-sample_index=inuse_objects', '-nodefraction=0', str(path))
    assert 'Type: inuse_objects' in top
    expected = {'Store.grow', 'make_strings', 'build_store'}
    rows = {line.split()[-1] for line in top.splitlines() if '%' in line}
    assert expected <= rows


def test_go_pprof_reads_an_empty_snapshot(go_pprof, tmp_path):
    path = tmp_path / 'empty.pb.gz'
    export(heapscope.Snapshot([], 1), 'pprof', str(path))
    assert _raw_samples(go_pprof('-raw', str(path))) == []


# --- collapsed stacks ----------------------------------------------------

def _unescape(label):
    for escaped, char in (('%3B', ';'), ('%0A', '\n'), ('%0D', '\r'), ('%25', '%')):
        label = label.replace(escaped, char)
    return label


def _parse_collapsed(data):
    """{outermost-first frame labels: size}."""
    stacks = {}
    for line in data.decode('utf-8', 'surrogateescape').splitlines():
        frames, _, size = line.rpartition(' ')
        key = tuple(_unescape(frame) for frame in frames.split(';'))
        assert key not in stacks
        stacks[key] = int(size)
    return stacks


def _label(filename, lineno):
    return '%s (%s:%d)' % (function_name(filename, lineno), filename, lineno)


def test_collapsed_has_one_line_per_traceback_outermost_first(snapshot):
    stacks = _parse_collapsed(render(snapshot, 'collapsed'))
    expected = {tuple(_label(frame.filename, frame.lineno) for frame in stat.traceback): stat.size
                for stat in snapshot.statistics('traceback')}
    assert stacks == expected
    assert sum(stacks.values()) == _totals(snapshot)[0]


def test_collapsed_frames_hide_separators_in_names(snapshot, program):
    data = render(snapshot, 'collapsed').decode('utf-8', 'surrogateescape')
    assert ';' in program and program not in data
    assert program.replace(';', '%3B') in data
    grow = ['build_store (%s:%d)' % (program, _marker_line('CALL_GROW')),
            'Store.grow (%s:%d)' % (program, _marker_line('ALLOC_BLOCKS'))]
    assert any(list(stack[-2:]) == grow for stack in _parse_collapsed(data.encode()))


def test_collapsed_escapes_line_breaks_and_percent():
    filename = '/tmp/a;b\nc%d\r.py'
    snapshot = heapscope.Snapshot([(0, 64, ((filename, 7),), 1)], 1)
    data = render(snapshot, 'collapsed')
    assert data.count(b'\n') == 1 and b'\r' not in data
    assert _parse_collapsed(data) == {(_label(filename, 7),): 64}


# --- speedscope ----------------------------------------------------------

def test_speedscope_profiles_weigh_bytes_and_blocks(snapshot):
    document = json.loads(render(snapshot, 'speedscope'))
    assert document['$schema'] == 'https://www.speedscope.app/file-format-schema.json'
    assert document['activeProfileIndex'] == 0
    size, count = _totals(snapshot)
    by_bytes, by_blocks = document['profiles']
    assert (by_bytes['type'], by_bytes['unit']) == ('sampled', 'bytes')
    assert (by_blocks['type'], by_blocks['unit']) == ('sampled', 'none')
    assert sum(by_bytes['weights']) == by_bytes['endValue'] == size
    assert sum(by_blocks['weights']) == by_blocks['endValue'] == count
    for profile in (by_bytes, by_blocks):
        assert profile['startValue'] == 0
        assert len(profile['samples']) == len(profile['weights'])


def test_speedscope_samples_are_outermost_first_over_shared_frames(snapshot):
    document = json.loads(render(snapshot, 'speedscope'))
    frames = document['shared']['frames']
    by_bytes, by_blocks = document['profiles']
    assert by_bytes['samples'] == by_blocks['samples']
    found = {}
    for sample, size, count in zip(by_bytes['samples'], by_bytes['weights'],
                                   by_blocks['weights']):
        assert all(0 <= index < len(frames) for index in sample)
        stack = tuple((frames[index]['file'], frames[index]['line'])
                      for index in reversed(sample))
        found[stack] = (size, count)
        for index in sample:
            frame = frames[index]
            assert frame['name'] == function_name(frame['file'], frame['line'])
    assert found == _expected_stacks(snapshot)
    # One entry per distinct frame.
    assert len({(frame['file'], frame['line']) for frame in frames}) == len(frames)


# --- every format ---------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_an_empty_snapshot_exports_an_empty_profile(fmt):
    data = render(heapscope.Snapshot([], 1), fmt)
    if fmt == 'pprof':
        profile = DecodedProfile(data)
        assert profile.samples == [] and len(profile.sample_types) == 2
    elif fmt == 'collapsed':
        assert data == b''
    else:
        document = json.loads(data)
        assert document['shared']['frames'] == []
        assert all(profile['samples'] == [] for profile in document['profiles'])


@pytest.mark.parametrize('fmt', FORMATS)
def test_odd_tracebacks_export_without_error(fmt):
    # A filename that was not valid UTF-8 (a surrogate escape) and a
    # traceback without frames, both possible in a loaded snapshot.
    snapshot = heapscope.Snapshot([(0, 100, (('/tmp/bad\udcff.py', 3),), 1),
                                   (0, 10, (), 0)], 1)
    data = render(snapshot, fmt)
    if fmt == 'pprof':
        profile = DecodedProfile(data)  # every string decodes as UTF-8
        assert sorted(values for _, values, _ in profile.samples) == [[1, 10], [1, 100]]
    elif fmt == 'collapsed':
        assert sorted(_parse_collapsed(data).values()) == [10, 100]
    else:
        document = json.loads(data)
        assert sorted(document['profiles'][0]['weights']) == [10, 100]
