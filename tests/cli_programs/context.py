KEPT = [bytearray(1000) for _ in range(100)]  # the first line allocates
"""Prints, as JSON, what the interpreter set up for it: sys.argv, __file__,
__name__, __spec__, sys.path[0] and whether sys.modules['__main__'] is this
module. Run as a script or with -m (tests/test_cli_run.py compares
`heapscope run` with `python` on it)."""

import json
import sys

print(json.dumps({
    'argv': sys.argv,
    'file': globals().get('__file__'),
    'name': __name__,
    'spec': getattr(__spec__, 'name', None),
    'path0': sys.path[0],
    'main_is_me': sys.modules['__main__'].__dict__ is globals(),
}))
