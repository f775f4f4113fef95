"""When finalizers run and which addresses objects get: a log of __del__
calls between the program's markers (reference counting, cycles freed by
gc.collect() and by the collector's own thresholds, a finalizer that
resurrects its object, module globals at interpreter shutdown), and
whether a freed object's memory goes to the next object of its size.
"""

import gc
import os
import sys

from _no_harm import report, report_tracers, start_tracer

LOG = []


class Finalized:
    def __init__(self, name, other=None):
        self.name = name
        self.other = other

    def __del__(self):
        LOG.append('del %s' % self.name)


class Resurrecting(Finalized):
    saved = []

    def __del__(self):
        LOG.append('del %s (resurrected)' % self.name)
        Resurrecting.saved.append(self)


class AtShutdown:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        # print() may be gone this late; the file descriptor is not
        os.write(1, ('["at shutdown", "del %s"]\n' % self.name).encode())


def address_reuse():
    """For objects of several kinds and sizes: is a freed object's address
    the next one of its kind made (free lists and pymalloc pools are LIFO)?"""
    makers = [('tuple of %d' % n, lambda n=n: tuple(range(1000, 1000 + n))) for n in (1, 3, 9, 30)]
    makers += [('list', lambda: [1, 2]), ('dict', lambda: {'a': 1})]
    makers += [('bytes of %d' % n, lambda n=n: b'x' * n) for n in (10, 100, 400, 1000)]
    makers += [('object', object), ('Finalized', lambda: Finalized('reuse'))]
    seen = []
    for name, make in makers:
        first = make()
        address = id(first)
        del first
        second = make()
        seen.append([name, id(second) == address])
        del second
    return seen


def main():
    start_tracer()
    gc.collect()
    LOG.append('chain')
    head = Finalized('a', Finalized('b', Finalized('c')))
    del head
    LOG.append('cycles, collect()')
    for i in range(5):
        x = Finalized('x%d' % i)
        y = Finalized('y%d' % i, x)
        x.other = y
        del x, y
    gc.collect()
    LOG.append('cycles left to the collector')
    for step in range(30):
        LOG.append('step %d' % step)
        for i in range(8):
            x = Finalized('auto x%d.%d' % (step, i))
            x.other = Finalized('auto y%d.%d' % (step, i), x)
            x.payload = [[j] for j in range(10)]  # containers held by the cycle
            del x
        filler = [[i] for i in range(100)]
        del filler
    LOG.append('resurrection')
    zombie = Resurrecting('zombie')
    del zombie
    LOG.append('resurrected alive: %d' % len(Resurrecting.saved))
    Resurrecting.saved.clear()  # the second death runs no finalizer
    gc.collect()
    LOG.append('end')
    report('log', LOG)
    report('a freed address goes to the next object of its kind', address_reuse())
    report_tracers()
    sys.stdout.flush()
    global first_kept, second_kept, third_kept
    first_kept = AtShutdown('first')
    second_kept = AtShutdown('second')
    third_kept = [AtShutdown('in a list 1'), AtShutdown('in a list 2')]


if __name__ == '__main__':
    main()
