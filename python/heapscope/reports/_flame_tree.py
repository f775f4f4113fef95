"""The flame graph's data: tracebacks summed along their paths into a tree,
rooted above the outermost frames, and cut down to the frames worth drawing.

Two limits keep a snapshot of 10^5 distinct tracebacks both quick to build
and small to embed:

- while building, at most ``capacity`` frames get a node of their own; the
  tracebacks are added biggest first, so what no longer fits is the small
  tail, summed into one "smaller frames" node under the deepest frame it
  shares with the tree;
- when encoding, only the ``bars`` biggest frames are kept (a frame is never
  smaller than its parent, so the kept frames always form a tree); each
  frame's dropped children become one "smaller frames" node.

Widths therefore still add up at every level: nothing is lost, only merged.
"""

from .._frames import _format_size

ROOT = -1     # the frame id of the node above every traceback
SMALLER = -2  # the frame id of a node that stands for merged, smaller frames


class FlameTree:
    """Sizes, counts and size changes summed along traceback paths."""

    def __init__(self, capacity):
        self.root = _Node(ROOT, 0)
        self.capacity = capacity
        self.nodes = 1
        self.tracebacks = 0

    def add(self, frames, size, count, size_diff):
        """Add one traceback, ``frames`` given outermost first as hashable keys."""
        self.tracebacks += 1
        node = self.root
        node.add(size, count, size_diff)
        for key in frames:
            child = node.children.get(key)
            if child is None:
                if self.nodes >= self.capacity:
                    node.smaller_child().add(size, count, size_diff)
                    return
                child = node.children[key] = _Node(key, node.depth + 1)
                self.nodes += 1
            child.add(size, count, size_diff)
            node = child

    def encode(self, bars, frame_id, diff):
        """The kept nodes, flat, parents before children, children biggest
        first: ``[frame id, parent index, size, count, size text, size diff,
        size diff text]``; ``frame_id(key)`` names a frame by its key.
        Flat, so that deep tracebacks nest no JSON."""
        kept = self._biggest(bars)
        encoded = []
        pending = [(self.root, -1)]
        while pending:
            node, parent = pending.pop()
            index = len(encoded)
            node_frame = node.key if node.key in (ROOT, SMALLER) else frame_id(node.key)
            encoded.append([
                node_frame, parent, node.size, node.count, _format_size(node.size, False),
                node.size_diff, _format_size(node.size_diff, True) if diff else '',
            ])
            children = []
            smaller = _Node(SMALLER, node.depth + 1)
            for child in node.children.values():
                if id(child) in kept:
                    children.append(child)
                else:
                    smaller.add(child.size, child.count, child.size_diff)
            if smaller.size:
                children.append(smaller)
            children.sort(key=lambda child: child.size)
            # Smallest pushed first: the biggest child is popped next.
            pending.extend((child, index) for child in children)
        return encoded

    def _biggest(self, bars):
        """ids of the ``bars`` biggest frame nodes. Ordered by size, then
        depth, a parent always comes before its children, so the set is
        closed upwards: a tree."""
        candidates = []
        pending = [self.root]
        while pending:
            node = pending.pop()
            if node.key == SMALLER:
                continue
            candidates.append(node)
            pending.extend(node.children.values())
        candidates.sort(key=lambda node: (-node.size, node.depth))
        return {id(node) for node in candidates[:bars]}


class _Node:
    __slots__ = ('key', 'depth', 'size', 'count', 'size_diff', 'children')

    def __init__(self, key, depth):
        self.key = key
        self.depth = depth
        self.size = 0
        self.count = 0
        self.size_diff = 0
        self.children = {}

    def add(self, size, count, size_diff):
        self.size += size
        self.count += count
        self.size_diff += size_diff

    def smaller_child(self):
        child = self.children.get(SMALLER)
        if child is None:
            child = self.children[SMALLER] = _Node(SMALLER, self.depth + 1)
        return child
