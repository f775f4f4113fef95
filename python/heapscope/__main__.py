"""``python -m heapscope``: the command line (see ``heapscope.cli``)."""

import sys

from heapscope.cli.main import main

if __name__ == '__main__':
    sys.exit(main())
