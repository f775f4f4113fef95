"""The snapshot as a pprof profile: the gzipped ``perftools.profiles.Profile``
protobuf that ``go tool pprof`` and continuous-profiling backends read.

Field numbers are those of pprof's proto/profile.proto. The profile has two
sample types, ``inuse_objects``/``count`` and ``inuse_space``/``bytes`` (the
default), one Sample per distinct traceback, one Location per
(filename, lineno) with one Line pointing at the Function (qualified name,
file, def line) that encloses it; module-level code is named
``<module> (file.py)``, since pprof groups functions by name alone.
``Sample.location_id[0]`` is the leaf, the allocating line: a Traceback's
last frame, since a Traceback is indexed oldest first. A sampled snapshot
records its sampling interval as the period and each sample's 95 % bounds as
numeric labels.
"""

import gzip
import os.path

from .._source import MODULE_SCOPE
from ._protobuf import Message
from ._stacks import FrameNames, sample_interval, stacks

# Profile
_SAMPLE_TYPE, _SAMPLE, _MAPPING, _LOCATION, _FUNCTION, _STRING_TABLE = 1, 2, 3, 4, 5, 6
_PERIOD_TYPE, _PERIOD, _COMMENT, _DEFAULT_SAMPLE_TYPE = 11, 12, 13, 14
# ValueType
_TYPE, _UNIT = 1, 2
# Sample
_LOCATION_ID, _VALUE, _LABEL = 1, 2, 3
# Label
_KEY, _NUM, _NUM_UNIT = 1, 3, 4
# Mapping
_ID, _MAPPING_FILENAME = 1, 5
_HAS_FUNCTIONS, _HAS_FILENAMES, _HAS_LINE_NUMBERS = 7, 8, 9
# Location
_MAPPING_ID, _LINE = 2, 4
# Line
_FUNCTION_ID, _LINE_NUMBER = 1, 2
# Function
_NAME, _FILENAME, _START_LINE = 2, 4, 5

SAMPLE_TYPES = (('inuse_objects', 'count'), ('inuse_space', 'bytes'))
DEFAULT_SAMPLE_TYPE = 'inuse_space'
_PYTHON_MAPPING_ID = 1


def render(snapshot):
    """The gzipped profile of ``snapshot``."""
    # mtime=0: the same snapshot always gives the same bytes.
    return gzip.compress(bytes(_profile(snapshot).data), mtime=0)


class _StringTable:
    def __init__(self):
        self.strings = ['']  # index 0 must be the empty string
        self._index = {'': 0}

    def __call__(self, text):
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.strings)
            self.strings.append(text)
        return index


class _Locations:
    """Location and Function messages, one per frame and per function, made
    on first use; ids count from 1 in that order."""

    def __init__(self, strings):
        self._strings = strings
        self._names = FrameNames()
        self._location_ids = {}   # (filename, lineno) -> id
        self._function_ids = {}   # (name, filename, def line) -> id
        self.locations = []
        self.functions = []

    def id(self, frame):
        location_id = self._location_ids.get(frame)
        if location_id is None:
            location_id = self._location_ids[frame] = len(self._location_ids) + 1
            line = Message().integer(_FUNCTION_ID, self._function_id(frame)) \
                .integer(_LINE_NUMBER, frame[1])
            self.locations.append(Message().integer(_ID, location_id)
                                  .integer(_MAPPING_ID, _PYTHON_MAPPING_ID)
                                  .message(_LINE, line))
        return location_id

    def _function_id(self, frame):
        filename = frame[0]
        name, start_line = self._names.scope(frame)
        if name == MODULE_SCOPE:
            # pprof aggregates by function name alone: without the file,
            # the top level of every module would be one function.
            name = '%s (%s)' % (name, os.path.basename(filename))
        key = (name, filename, start_line)
        function_id = self._function_ids.get(key)
        if function_id is None:
            function_id = self._function_ids[key] = len(self._function_ids) + 1
            self.functions.append(Message().integer(_ID, function_id)
                                  .integer(_NAME, self._strings(name))
                                  .integer(_FILENAME, self._strings(filename))
                                  .integer(_START_LINE, start_line))
        return function_id


def _profile(snapshot):
    strings = _StringTable()
    locations = _Locations(strings)
    profile = Message()
    for type_name, unit in SAMPLE_TYPES:
        profile.message(_SAMPLE_TYPE, _value_type(strings, type_name, unit))
    for stack in stacks(snapshot):
        profile.message(_SAMPLE, _sample(stack, locations, strings))
    # One mapping stands for the interpreter: it tells pprof the locations
    # are already symbolized, so it looks for no binary to symbolize them.
    profile.message(_MAPPING, Message().integer(_ID, _PYTHON_MAPPING_ID)
                    .integer(_MAPPING_FILENAME, strings('python'))
                    .integer(_HAS_FUNCTIONS, True).integer(_HAS_FILENAMES, True)
                    .integer(_HAS_LINE_NUMBERS, True))
    for message in locations.locations:
        profile.message(_LOCATION, message)
    for message in locations.functions:
        profile.message(_FUNCTION, message)

    comments = ['heapscope snapshot, traceback limit %d'
                % getattr(snapshot, 'traceback_limit', 0)]
    interval = sample_interval(snapshot)
    if interval:
        profile.message(_PERIOD_TYPE, _value_type(strings, 'space', 'bytes'))
        profile.integer(_PERIOD, interval)
        comments.append('sampled every %d bytes on average: values are estimates, '
                        '*_ci_low/_ci_high labels their 95%% bounds' % interval)
    profile.packed(_COMMENT, [strings(comment) for comment in comments])
    profile.integer(_DEFAULT_SAMPLE_TYPE, strings(DEFAULT_SAMPLE_TYPE))

    # The string table goes last: every other field has added its strings.
    for text in strings.strings:
        # Filenames may hold undecodable bytes (surrogate escapes); the
        # protobuf string must be valid UTF-8.
        profile.bytes(_STRING_TABLE, text.encode('utf-8', 'backslashreplace'))
    return profile


def _sample(stack, locations, strings):
    sample = Message()
    sample.packed(_LOCATION_ID, [locations.id(frame) for frame in stack.frames])
    sample.packed(_VALUE, (stack.count, stack.size))  # SAMPLE_TYPES order
    for type_name, bounds, unit in (('inuse_objects', stack.count_ci, 'count'),
                                    ('inuse_space', stack.size_ci, 'bytes')):
        if bounds is None:
            continue
        for suffix, bound in zip(('_ci_low', '_ci_high'), bounds):
            sample.message(_LABEL, Message()
                           .integer(_KEY, strings(type_name + suffix))
                           .integer(_NUM, round(bound))
                           .integer(_NUM_UNIT, strings(unit)))
    return sample


def _value_type(strings, type_name, unit):
    return Message().integer(_TYPE, strings(type_name)).integer(_UNIT, strings(unit))
