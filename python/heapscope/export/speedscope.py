"""The snapshot in speedscope's JSON file format
(https://www.speedscope.app/file-format-schema.json, read offline by the
viewer; nothing here fetches it).

Two "sampled" profiles over one shared frame list: bytes in use (unit
"bytes", shown first) and blocks in use (unit "none"). Each sample is one
traceback, its stack listed outermost frame first as speedscope wants, its
weight the traceback's size or count.
"""

import json

from ._stacks import FrameNames, stacks

SCHEMA = 'https://www.speedscope.app/file-format-schema.json'


def render(snapshot):
    names = FrameNames()
    frame_index = {}  # (filename, lineno) -> index into frames
    frames = []
    samples = []
    sizes = []
    counts = []
    for stack in stacks(snapshot):
        sample = []
        for frame in reversed(stack.frames):  # outermost first
            index = frame_index.get(frame)
            if index is None:
                index = frame_index[frame] = len(frames)
                frames.append({'name': names.name(frame),
                               'file': frame[0], 'line': frame[1]})
            sample.append(index)
        samples.append(sample)
        sizes.append(stack.size)
        counts.append(stack.count)
    document = {
        '$schema': SCHEMA,
        'shared': {'frames': frames},
        'profiles': [_profile('bytes in use', 'bytes', samples, sizes),
                     _profile('blocks in use', 'none', samples, counts)],
        'name': 'heapscope snapshot',
        'activeProfileIndex': 0,
        'exporter': 'heapscope',
    }
    # ensure_ascii keeps undecodable filenames (surrogate escapes) valid JSON.
    return json.dumps(document, ensure_ascii=True, separators=(',', ':')).encode('ascii')


def _profile(name, unit, samples, weights):
    return {'type': 'sampled', 'name': name, 'unit': unit,
            'startValue': 0, 'endValue': sum(weights),
            'samples': samples, 'weights': weights}
