"""A fixed allocation-heavy workload (json + ast) for instruction counts.

Run under callgrind by callgrind_hotpath.sh; also usable alone:
    python benchmarks/hotpath_workload.py {none|cpython|heapscope|heapscope-sampled} NFRAME

heapscope-sampled samples every 512 KiB on average.
"""
import ast
import json
import sys

mode, nframe = sys.argv[1], int(sys.argv[2])
source = open(ast.__file__).read()
data = json.dumps([{"a": i, "b": [str(i)] * 5, "c": {"x": i * 1.5}} for i in range(3000)])
if mode == "cpython":
    import tracemalloc as tracer
elif mode in ("heapscope", "heapscope-sampled"):
    import heapscope as tracer
else:
    tracer = None
if mode == "heapscope-sampled":
    tracer.start(nframe, sample_interval=512 * 1024)
elif tracer is not None:
    tracer.start(nframe)
for _ in range(2):
    json.loads(data)
    ast.parse(source)
