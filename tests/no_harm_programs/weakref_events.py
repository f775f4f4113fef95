"""Weakref callbacks and weakref.finalize firing at the same points: a log
of numbered events, where each death is written between the program's own
markers. Some objects die by reference counting, some in cycles freed by
the collector when its thresholds say so, so a tracer that moves the
collections moves the deaths in the log.
"""

import gc
import weakref

from _no_harm import report, report_tracers, start_tracer


class Thing:
    def __init__(self, name):
        self.name = name
        self.partner = None


def one_step(step, log, refs):
    log.append('step %d' % step)
    alone = Thing('alone %d' % step)
    refs.append(weakref.ref(alone, died(log, alone.name)))
    del alone  # dies here, by reference counting
    a = Thing('cycle a %d' % step)
    b = Thing('cycle b %d' % step)
    a.partner, b.partner = b, a
    refs.append(weakref.ref(a, died(log, a.name)))
    weakref.finalize(b, log.append, 'finalized %s' % b.name)
    b.payload = [[i] for i in range(60)]  # containers that move the collector
    del a, b  # they die when the collector next runs
    log.append('end %d' % step)


def died(log, name):
    return lambda ref: log.append('died %s' % name)


def main():
    start_tracer()
    one_step(-1, [], [])  # the first weakref.finalize() imports atexit
    gc.collect()
    log = []
    refs = []  # the weak references must outlive their objects
    for step in range(40):
        one_step(step, log, refs)
    log.append('collect')
    gc.collect()
    log.append('done')
    report('events', log)
    report('dead references', sum(ref() is None for ref in refs))
    report_tracers()


if __name__ == '__main__':
    main()
