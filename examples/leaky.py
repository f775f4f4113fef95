"""A small web-ish service that leaks memory, and the tracemalloc docs'
"Display the top 10" recipe run over it with heapscope.

    python3 examples/leaky.py                    # 20000 requests
    python3 examples/leaky.py --requests 5000    # fewer: compare with heapscope diff

The only change from code written for the standard module is the import:
``import heapscope as tracemalloc``. The output has the standard module's
format; the leaking lines of this file come out on top.
"""

import argparse

import heapscope as tracemalloc

REQUESTS = 20_000

# Leak 1: a response cache keyed by request id. Ids never repeat, so nothing
# is ever served from it and nothing is ever evicted: it grows per request.
_response_cache = {}

# Leak 2: an audit log whose records are appended and never trimmed.
_audit_log = []

# Leak 3 (smaller): per-user session objects nobody closes.
_sessions = {}


class Session:
    __slots__ = ("user", "history")

    def __init__(self, user):
        self.user = user
        self.history = []


def render_page(request_id):
    body = f"<li>item {request_id}</li>" * 12  # ~250 bytes per request, kept
    _response_cache[request_id] = body
    return body


def audit(request_id, user, body):
    _audit_log.append((request_id, user, len(body)))  # a tuple per request, kept


def session_for(user):
    session = _sessions.get(user)
    if session is None:
        session = _sessions[user] = Session(user)
    session.history.append(f"/page/{user}")  # one string per request, kept
    return session


def handle(request_id):
    user = f"user{request_id % 500}"
    body = render_page(request_id)
    audit(request_id, user, body)
    session_for(user)
    scratch = bytearray(2_000)  # temporary: freed on return, not a leak
    return len(body) + len(scratch)


def main():
    parser = argparse.ArgumentParser(description="Serve fake requests, leaking on purpose.")
    parser.add_argument("--requests", type=int, default=REQUESTS, metavar="N",
                        help="requests to serve (default: %(default)s)")
    requests = parser.parse_args().requests

    tracemalloc.start()

    for request_id in range(requests):
        handle(request_id)

    snapshot = tracemalloc.take_snapshot()
    top_stats = snapshot.statistics("lineno")

    print("[ Top 10 ]")
    for stat in top_stats[:10]:
        print(stat)


if __name__ == "__main__":
    main()
