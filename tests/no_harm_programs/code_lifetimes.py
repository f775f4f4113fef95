"""Code objects made by compile() and exec() and dropped die when the
program drops them, traced or not. Each generated function allocates while
it runs (so a tracer records a traceback through its code); a weak
reference to its code object tells when the code dies, and
sys.getrefcount() who else holds it while it lives.
"""

import gc
import sys
import weakref

from _no_harm import report, report_tracers, start_tracer

COUNT = 200


def main():
    start_tracer()
    log = []
    refs = []
    refcounts = []
    for i in range(COUNT):
        namespace = {}
        source = 'def f(n):\n    return [n] * %d\n' % (i + 1)
        exec(compile(source, '<generated %d>' % i, 'exec'), namespace)
        function = namespace.pop('f')  # no cycle through the function's globals
        function(i)
        refcounts.append(sys.getrefcount(function.__code__))
        refs.append(weakref.ref(function.__code__,
                                lambda ref, i=i: log.append('function code %d died' % i)))
        del function, namespace
        log.append('function %d dropped' % i)

        module_code = compile('x = [%d] * 3\ny = {"x": x}\n' % i, '<module %d>' % i, 'exec')
        refs.append(weakref.ref(module_code,
                                lambda ref, i=i: log.append('module code %d died' % i)))
        exec(module_code, {})
        del module_code
        log.append('module %d dropped' % i)

        holder = {}
        exec('def g():\n    return lambda: [1, 2, %d]\nh = g()\nh()\n' % i, holder)
        refs.append(weakref.ref(holder['h'].__code__,
                                lambda ref, i=i: log.append('lambda code %d died' % i)))
        holder.clear()  # the lambda, g and their code objects go now
        log.append('lambda %d dropped' % i)
    report('sys.getrefcount of each function code after a call', refcounts)
    report('code objects alive after the loop', sum(ref() is not None for ref in refs))
    gc.collect()
    report('code objects alive after collect()', sum(ref() is not None for ref in refs))
    report('events', log)
    report_tracers()


if __name__ == '__main__':
    main()
