"""Reports made from snapshots: a terminal view and a self-contained HTML page."""
