"""Trace filters for Snapshot.filter_traces().

Filters see raw traces, ``(domain, size, frames, total_nframe)`` with frames
most recent first, so filtering never builds Trace or Frame objects.
"""

import fnmatch
import os.path


def _normalize_filename(filename):
    """Case-normalise a filename and treat 'x.pyc' as its source 'x.py'."""
    filename = os.path.normcase(filename)
    if filename.endswith('.pyc'):
        filename = filename[:-1]
    return filename


class BaseFilter:
    """What every filter has: whether it includes or excludes what it matches."""

    __module__ = 'heapscope'

    def __init__(self, inclusive):
        self.inclusive = inclusive

    def _match(self, trace):
        raise NotImplementedError


class Filter(BaseFilter):
    """Match traces by filename pattern, and optionally line and domain."""

    __module__ = 'heapscope'

    def __init__(self, inclusive, filename_pattern,
                 lineno=None, all_frames=False, domain=None):
        super().__init__(inclusive)
        # Normalised once here; frame filenames are normalised per match.
        self._filename_pattern = _normalize_filename(filename_pattern)
        self.lineno = lineno
        self.all_frames = all_frames
        self.domain = domain

    @property
    def filename_pattern(self):
        return self._filename_pattern

    def _match_frame_impl(self, filename, lineno):
        # Whether the frame fits the pattern, before inclusive/exclusive.
        if not fnmatch.fnmatch(_normalize_filename(filename),
                               self._filename_pattern):
            return False
        return self.lineno is None or lineno == self.lineno

    def _match_frame(self, filename, lineno):
        # True when the frame passes: an exclusive filter passes the frames
        # its pattern does not fit.
        return self._match_frame_impl(filename, lineno) ^ (not self.inclusive)

    def _match_traceback(self, traceback):
        # traceback: raw frames, most recent first
        if not self.all_frames:
            # only the frame that allocated the block counts
            filename, lineno = traceback[0]
            return self._match_frame(filename, lineno)
        fits = any(self._match_frame_impl(filename, lineno)
                   for filename, lineno in traceback)
        return self.inclusive if fits else not self.inclusive

    def _match(self, trace):
        domain, size, frames, total_nframe = trace
        passes = self._match_traceback(frames)
        if self.domain is None:
            return passes
        # With a domain, an inclusive filter wants both the frames and the
        # domain; an exclusive one only rejects its pattern inside its domain.
        if self.inclusive:
            return passes and domain == self.domain
        return passes or domain != self.domain


class DomainFilter(BaseFilter):
    """Match traces by address space (domain) only."""

    __module__ = 'heapscope'

    def __init__(self, inclusive, domain):
        super().__init__(inclusive)
        self._domain = domain

    @property
    def domain(self):
        return self._domain

    def _match(self, trace):
        domain, size, frames, total_nframe = trace
        return (domain == self.domain) ^ (not self.inclusive)
