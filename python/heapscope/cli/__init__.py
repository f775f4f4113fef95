"""heapscope's command line: ``python -m heapscope`` and the ``heapscope`` script.

One module per subcommand (``run``, ``top``, ``diff``, ``report``,
``export``), the argument definitions in ``parser``, and ``session``, the
tracing-until-exit machinery that ``run`` and the ``HEAPSCOPE_TRACE``
environment variable share. Nothing here is imported by ``import heapscope``.
"""
