"""Turning measured times into the tables, the targets and the plot.

``summarize`` reduces the raw results (every run's seconds, per workload and
configuration) to slowdowns; ``text`` and ``markdown`` lay the same numbers
out for the terminal and for docs/benchmarks.md; ``plot`` draws them.
"""

import math
import os
import statistics

import configs as configs_module

# A ratio of added times means nothing when the reference adds almost nothing:
# below this fraction of the untraced time it is shown as "n/m".
MEANINGFUL_ADDED = 0.05

CLOCK_NAMES = {"cpu": "CPU time", "wall": "wall-clock time"}

# Issue 4's targets.
TARGET_GEOMEAN_1 = 1.25
TARGET_MAX_1 = 2.0
TARGET_ADD_RATIO = 1 / 3
TARGET_GEOMEAN_25 = 1.5
TARGET_BYTES_PER_BLOCK = 16
# Below this, the RSS a tracer adds is within the noise between runs.
RSS_RESOLUTION = 1 << 20
# Issue 6's target for sampled tracing at a 512 KiB interval.
TARGET_GEOMEAN_SAMPLED = 1.05
SAMPLED = "heapscope-sampled"


def paired_slowdown(pairs):
    """The median traced / untraced ratio of [untraced, traced] time pairs."""
    return statistics.median(t / u for u, t in pairs)


def geomean(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


class Summary:
    """Slowdowns, add ratios, geomeans and memory per block of one run."""

    def __init__(self, results, clock=None):
        self.results = results
        self.clock = clock or results["clock"]
        self.meta = results["meta"]
        self.workloads = results["workloads"]
        self.configs = [configs_module.BY_KEY[k] for k in results["configs"]]
        self.traced = [c for c in self.configs if c.key != "none"]
        self.descriptions = results.get("descriptions", {})
        self.errors = results["errors"]            # {workload: {config: reason}}
        self.minimum = {}                          # {workload: {config: s}}
        self.median = {}
        times = results["times"][self.clock]
        for w in self.workloads:
            self.minimum[w] = {c: min(ts) for c, ts in times[w].items() if ts}
            self.median[w] = {c: statistics.median(ts) for c, ts in times[w].items() if ts}
        # Untraced runs of the main round robin only. A configuration is
        # compared with the untraced runs interleaved with its own: the extra
        # runs only sampled mode had would lower the untraced minimum on a
        # noisy machine (a minimum of 11 runs against one of 5) and inflate
        # every other configuration's slowdown.
        main = self.meta.get("repeat") if self.meta.get("sampled_extra_repeat") else None
        self.main_minimum, self.main_median = {}, {}
        for w in self.workloads:
            untraced = times[w].get("none", [])[:main]
            if untraced:
                self.main_minimum[w] = min(untraced)
                self.main_median[w] = statistics.median(untraced)
        # Loop-by-loop ratios of traced to untraced time (run.py --json
        # written since the pairing; older results have none and fall back
        # to minima).
        pairs = results.get("pairs", {}).get(self.clock)
        self.paired = None
        if pairs:
            self.paired = {w: {c: paired_slowdown(runs)
                               for c, runs in pairs.get(w, {}).items() if runs}
                           for w in self.workloads}
            self.pair_counts = {w: {c: len(runs) for c, runs in pairs.get(w, {}).items()}
                                for w in self.workloads}
        self.memory = results.get("memory", {})
        self.memory_errors = results.get("memory_errors", {})
        # Sampled tracing on large untouched blocks (rss.py); absent from
        # results written before it was measured.
        self.memory_sparse = results.get("memory_sparse", {})
        self.memory_sparse_errors = results.get("memory_sparse_errors", {})

    # --- timing -------------------------------------------------------------

    def untraced(self, w, c, by="minimum"):
        """The untraced time configuration `c` is compared with (None if missing)."""
        if c == SAMPLED:
            return getattr(self, by)[w].get("none")
        return getattr(self, "main_" + by).get(w)

    def untraced_time(self, w):
        """The untraced column: the median run when slowdowns come from pairs
        (they do not divide by it), else the minimum they divide by."""
        if self.paired is not None:
            return self.median[w].get("none")
        return self.main_minimum.get(w)

    def slowdown(self, w, c):
        """Traced time over untraced time: the median loop-by-loop ratio when
        the runs were paired, otherwise whole runs' minimum over minimum."""
        if self.paired is not None:
            if self.reason(w, c):
                return None
            return self.paired[w].get(c)
        return self.whole_run_slowdown(w, c)

    def whole_run_slowdown(self, w, c, by="minimum"):
        """Whole runs compared: minimum over minimum (by="median": median
        over median)."""
        times = getattr(self, by)[w]
        base = self.untraced(w, c, by)
        if base is None or c not in times:
            return None
        return times[c] / base

    def geomean(self, c, by=None):
        """Of the slowdowns; by="minimum" or "median": of whole runs' instead."""
        if by is None:
            return geomean([self.slowdown(w, c) for w in self.workloads])
        return geomean([self.whole_run_slowdown(w, c, by) for w in self.workloads])

    def geomean_count(self, c):
        return sum(self.slowdown(w, c) is not None for w in self.workloads)

    def add_ratio(self, w, nframe):
        """Time heapscope adds / time CPython's tracemalloc adds (from the
        slowdowns when paired, else from minima)."""
        ours, theirs = f"heapscope-{nframe}", f"tracemalloc-{nframe}"
        if self.paired is not None:
            s_ours, s_theirs = self.slowdown(w, ours), self.slowdown(w, theirs)
            if s_ours is None or s_theirs is None:
                return None, "n/a"
            if s_theirs - 1 < MEANINGFUL_ADDED:
                return None, "n/m"
            return (s_ours - 1) / (s_theirs - 1), None
        times = self.minimum[w]
        base = self.untraced(w, ours)
        if base is None or not all(k in times for k in (ours, theirs)):
            return None, "n/a"
        added_theirs = times[theirs] - base
        if added_theirs < MEANINGFUL_ADDED * base:
            return None, "n/m"
        return (times[ours] - base) / added_theirs, None

    def has(self, key):
        return any(c.key == key for c in self.configs)

    def reason(self, w, c):
        return self.errors.get(w, {}).get(c)

    # --- memory -------------------------------------------------------------

    def bytes_per_block(self, c):
        """RSS the tracer adds per traced block, and the block count used."""
        m = self.memory
        if c not in m or "none" not in m:
            return None, None
        blocks = m[c].get("blocks") or m.get("tracemalloc-1", {}).get("blocks") \
            or m.get("heapscope-1", {}).get("blocks")
        if not blocks:
            return None, None
        added = m[c]["rss_delta_bytes"] - m["none"]["rss_delta_bytes"]
        return added / blocks, blocks

    def has_sparse(self):
        return bool(self.memory_sparse or self.memory_sparse_errors)

    def sparse_bytes_per_block(self, key):
        """RSS a configuration adds per live traced block on the sparse
        workload (untraced gain subtracted), and its block count."""
        m = self.memory_sparse
        if key not in m or "none" not in m or not m[key].get("blocks"):
            return None, None
        added = m[key]["rss_delta_bytes"] - m["none"]["rss_delta_bytes"]
        return added / m[key]["blocks"], m[key]["blocks"]

    def bytes_per_sampled_block(self):
        return self.sparse_bytes_per_block(SAMPLED)

    def sampled_vs_exact(self):
        """(per sampled block, exact mode's per block on the same sparse blocks,
        exact mode's per block on the small objects, met or None).  The target
        is judged on the same blocks; results from before exact mode was
        measured there fall back to the small objects."""
        sampled, _ = self.bytes_per_sampled_block()
        exact_same, _ = self.sparse_bytes_per_block("heapscope-1")
        exact_small, _ = self.bytes_per_block("heapscope-1")
        exact = exact_same if exact_same is not None else exact_small
        met = None if sampled is None or exact is None else sampled <= exact
        return sampled, exact_same, exact_small, met

    # --- targets ------------------------------------------------------------

    def targets(self):
        """Issue 4's targets: (statement, measured, met or None if unknown)."""
        rows = []
        g1 = self.geomean("heapscope-1") if self.has("heapscope-1") else None
        rows.append((f"nframe=1 geomean slowdown <= {TARGET_GEOMEAN_1}x",
                     _x(g1), None if g1 is None else g1 <= TARGET_GEOMEAN_1))
        worst = self._worst(lambda w: self.slowdown(w, "heapscope-1"))
        rows.append((f"nframe=1: no workload above {TARGET_MAX_1:g}x",
                     "n/a" if worst is None else f"max {_x(worst[1])} ({worst[0]})",
                     None if worst is None else worst[1] <= TARGET_MAX_1))
        worst = self._worst(lambda w: self.add_ratio(w, 1)[0])
        rows.append(("nframe=1: heapscope adds <= 1/3 of the time tracemalloc adds, "
                     "on every workload",
                     "n/a" if worst is None else f"max {worst[1]:.2f} ({worst[0]})",
                     None if worst is None else worst[1] <= TARGET_ADD_RATIO))
        g25 = self.geomean("heapscope-25") if self.has("heapscope-25") else None
        rows.append((f"nframe=25 geomean slowdown <= {TARGET_GEOMEAN_25}x",
                     _x(g25), None if g25 is None else g25 <= TARGET_GEOMEAN_25))
        bpb, _ = self.bytes_per_block("heapscope-1")
        rows.append((f"<= {TARGET_BYTES_PER_BLOCK} bytes of RSS per traced block",
                     "n/a" if bpb is None else f"{bpb:.1f} B",
                     None if bpb is None else bpb <= TARGET_BYTES_PER_BLOCK))
        gm = self.geomean("memray") if self.has("memray") else None
        met = None if gm is None or g1 is None else g1 < gm
        rows.append(("ahead of memray (Python allocators) on the geomean",
                     f"heapscope nframe=1 {_x(g1)}, nframe=25 {_x(g25)}; memray {_x(gm)}",
                     met))
        gs = self.geomean("heapscope-sampled") if self.has("heapscope-sampled") else None
        rows.append((f"sampled (512 KiB) geomean slowdown <= {TARGET_GEOMEAN_SAMPLED}x (issue 6)",
                     _x(gs), None if gs is None else gs <= TARGET_GEOMEAN_SAMPLED))
        if self.has_sparse():
            sampled, exact_same, exact_small, met = self.sampled_vs_exact()
            rows.append(("resident memory per sampled block <= exact mode's (issue 6)",
                         f"sampled {_bytes(sampled)}; exact {_bytes(exact_same)} on the same "
                         f"blocks, {_bytes(exact_small)} on small objects", met))
        return rows

    def _worst(self, value):
        found = [(w, value(w)) for w in self.workloads]
        found = [f for f in found if f[1] is not None]
        return max(found, key=lambda f: f[1]) if found else None


def _x(value):
    return "n/a" if value is None else f"{value:.2f}x"


def _ratio(summary, w, nframe):
    value, why = summary.add_ratio(w, nframe)
    return why if value is None else f"{value:.2f}".replace("-0.00", "0.00")


def _cell(summary, w, c):
    value = summary.slowdown(w, c.key)
    return "n/a" if value is None else f"{value:.2f}x"


def _mib(n):
    return f"{n / 2**20:.1f}"


def _bytes(value):
    return "n/a" if value is None else f"{value:.1f} B"


# --- the tables ---------------------------------------------------------------

def slowdown_rows(summary):
    """Header and rows of the main table, shared by text and markdown."""
    header = ["workload", "untraced"] + [c.label for c in summary.traced]
    ratios = [n for n in (1, 25) if summary.has(f"heapscope-{n}") and summary.has(f"tracemalloc-{n}")]
    header += [f"hs/tm added, nframe={n}" for n in ratios]
    rows = []
    for w in summary.workloads:
        base = summary.untraced_time(w)
        row = [w, "n/a" if base is None else f"{base:.3f} s"]
        row += [_cell(summary, w, c) for c in summary.traced]
        row += [_ratio(summary, w, n) for n in ratios]
        rows.append(row)
    geo = ["geomean", ""]
    for c in summary.traced:
        g = summary.geomean(c.key)
        n = summary.geomean_count(c.key)
        geo.append(_x(g) + ("" if n in (0, len(summary.workloads)) else f" ({n} of {len(summary.workloads)})"))
    geo += [""] * len(ratios)
    rows.append(geo)
    return header, rows


def memory_rows(summary, pointer="see Memory per sampled block"):
    header = ["tracer", "blocks", "RSS delta (MiB)", "added by tracing (MiB)", "bytes per block"]
    rows = []
    for key in ("none", "tracemalloc-1", "heapscope-1", "memray", "heapscope-sampled"):
        if key in summary.memory:
            m = summary.memory[key]
            bpb, blocks = summary.bytes_per_block(key)
            added = m["rss_delta_bytes"] - summary.memory["none"]["rss_delta_bytes"] \
                if "none" in summary.memory else None
            label = configs_module.BY_KEY[key].label
            if key == "memray":
                label += " *"
            per_block = "" if key == "none" else "n/a" if bpb is None else f"{bpb:.1f}"
            if added is not None and key != "none" and abs(added) < RSS_RESOLUTION:
                # a few hundred sampled blocks: what they add is lost in the
                # run-to-run noise of the RSS, so a quotient would be noise
                per_block = "not measurable (added RSS below 1 MiB)"
            if key == SAMPLED and summary.has_sparse():
                per_block = pointer
            rows.append([label,
                         "" if key == "none" else f"{blocks:,}" if blocks else "n/a",
                         _mib(m["rss_delta_bytes"]),
                         "" if key == "none" or added is None else _mib(added),
                         per_block])
        elif key in summary.memory_errors:
            rows.append([configs_module.BY_KEY[key].label, "n/a", "n/a", "n/a",
                         f"n/a: {summary.memory_errors[key]}"])
    return header, rows


def sparse_rows(summary):
    """The memory per sampled block table, shared by text and markdown."""
    header = ["tracer", "traced blocks", "RSS delta (MiB)", "added by tracing (KiB)",
              "bytes per traced block", "tracer's own count per block"]
    m, rows = summary.memory_sparse, []
    for key in ("none", "heapscope-1", SAMPLED):
        label = configs_module.BY_KEY[key].label
        if key in m:
            added = m[key]["rss_delta_bytes"] - m["none"]["rss_delta_bytes"] \
                if "none" in m else None
            bpb, blocks = summary.sparse_bytes_per_block(key)
            rows.append([label, "" if key == "none" else f"{blocks:,}" if blocks else "n/a",
                         _mib(m[key]["rss_delta_bytes"]),
                         "" if key == "none" or added is None else f"{added / 1024:,.0f}",
                         "" if key == "none" else _bytes(bpb),
                         "" if key == "none" else _own_count(m[key])])
        elif key in summary.memory_sparse_errors:
            rows.append([label, "n/a", "n/a", "n/a",
                         f"n/a: {summary.memory_sparse_errors[key]}", ""])
    return header, rows


def _own_count(result):
    """get_tracemalloc_memory() growth per traced block (older results lack it)."""
    delta, blocks = result.get("tracer_self_delta_bytes"), result.get("blocks")
    return "n/a" if delta is None or not blocks else _bytes(delta / blocks)


def _sparse_verdict(summary):
    sampled, exact_same, exact_small, met = summary.sampled_vs_exact()
    mark = "unknown" if met is None else "met" if met else "MISSED"
    exact = exact_same if exact_same is not None else exact_small
    return f"at most exact mode's ({_bytes(exact)}): {mark}"


def _text_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                               for i, (v, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _md_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        cells = [f"**{v}**" if r[0] == "geomean" and v else str(v) for v in r]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _failures(summary):
    """One line per reason: what could not be measured, and why."""
    by_reason = {}
    for w in summary.workloads:
        for c, why in summary.errors.get(w, {}).items():
            by_reason.setdefault(why, set()).add((w, c))
    order = [c.key for c in summary.configs]
    lines = []
    for why, pairs in by_reason.items():
        workloads = sorted({w for w, _ in pairs}, key=summary.workloads.index)
        configs = sorted({c for _, c in pairs}, key=order.index)
        if len(pairs) == len(workloads) * len(configs):
            what = (", ".join(configs) if len(workloads) == len(summary.workloads)
                    else ", ".join(workloads) if configs == order
                    else f"{', '.join(workloads)} under {', '.join(configs)}")
        else:
            what = ", ".join(f"{w} under {c}" for w, c in sorted(pairs))
        lines.append(f"{what}: {why}")
    return lines


def _target_lines(summary):
    out = []
    for statement, measured, met in summary.targets():
        mark = "unknown" if met is None else "met" if met else "MISSED"
        out.append((statement, measured, mark))
    return out


def text(summary):
    meta = summary.meta
    parts = [f"heapscope {meta['commit']} on {meta['python']}, {meta['nproc']} x {meta['cpu']}; "
             "slowdown against no tracing, "
             + (f"median ratio of {CLOCK_NAMES[summary.clock]} over paired untraced and "
                f"traced loops of {meta['repeat']} runs" if summary.paired is not None else
                f"minimum {CLOCK_NAMES[summary.clock]} of {meta['repeat']} runs"),
             "", _text_table(*slowdown_rows(summary))]
    if summary.memory or summary.memory_errors:
        parts += ["", f"Memory per traced block ({meta.get('memory_objects', 0):,} objects kept alive):",
                  _text_table(*memory_rows(summary, "see below"))]
    if summary.has_sparse():
        parts += ["", f"Memory per sampled block ({meta.get('memory_sparse_blocks', 0):,} "
                  "untouched blocks of 1 MiB kept alive; "
                  f"{_sparse_verdict(summary)}):",
                  _text_table(*sparse_rows(summary))]
    parts += ["", "Targets (issues 4 and 6):"]
    parts += [f"  [{mark}] {s}: {m}" for s, m, mark in _target_lines(summary)]
    failures = _failures(summary)
    if failures:
        parts += ["", "Not measured:"] + [f"  {f}" for f in failures]
    for warning in meta.get("warnings", []):
        parts += ["", f"WARNING: {warning}"]
    return "\n".join(parts)


def _paired_method(summary):
    counts = [n for by_config in summary.pair_counts.values() for n in by_config.values() if n]
    loops = f"{min(counts)}-{max(counts)}" if counts and min(counts) != max(counts) \
        else str(counts[0]) if counts else "0"
    return (
        "Each traced run times the workload's loops in fours in one process, by a coin "
        "seeded alike in every run either untraced, traced twice (the tracer started for "
        "those two), untraced, or traced, untraced twice, traced (a tracer session each). "
        "A slowdown is the median, over the fours of "
        f"{summary.meta['repeat']} runs ({loops} per configuration), of the traced "
        f"{CLOCK_NAMES[summary.clock]} divided by the untraced: this machine's speed jumps by "
        "about half for seconds at a time, so only times taken a fraction of a second apart "
        "compare (minima of whole runs put some workloads below 1.00x); untraced loops on "
        "both sides cancel a drift, and the coin keeps the garbage collector's full "
        "collections, every few loops, from falling into the same places of every four "
        "(with no tracer at all the same measurement gives 0.98x-1.03x on eleven of the "
        "workloads, 1.04x on nbody and 1.11x on float, whose full collections are large). "
        "The untraced column is the median of the separate untraced runs"
    )


def markdown(summary, plot_name):
    meta = summary.meta
    traced_labels = ", ".join(c.label for c in summary.traced)
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by benchmarks/run.py; rerun it rather than editing by hand. -->",
        "",
        "heapscope side by side with CPython's `tracemalloc` and memray: the same "
        "workloads, each in a fresh process per run, every configuration of a workload "
        "interleaved (round robin) in one invocation. Times cover the workload body only "
        "(no interpreter startup, imports, setup or warm-up call).",
        "",
        f"- Date: {meta['date']}",
        f"- Python: {meta['python']} (`{meta['python_path']}`)",
        f"- Machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['memory']} RAM, Linux {meta['kernel']}; "
        f"load average {meta['load_before']:.1f} before, {meta.get('load_after', 0):.1f} after",
        f"- heapscope commit: `{meta['commit']}`",
        f"- Command: `{meta['command']}`",
        f"- Mode: {meta['mode']}, {meta['repeat']} runs per configuration, "
        f"took {meta.get('elapsed', 0) / 60:.1f} min",
        "",
    ]
    for warning in meta.get("warnings", []):
        lines += [f"> **Warning:** {warning}", ""]
    lines += [
        "## Slowdown against no tracing",
        "",
        (_paired_method(summary) if summary.paired is not None else
         f"Minimum {CLOCK_NAMES[summary.clock]} of {meta['repeat']} runs under each "
         "configuration divided by the minimum of the untraced runs interleaved with them"
         + (f" (sampled mode: {meta['repeat'] + meta['sampled_extra_repeat']} runs, against "
            "as many untraced ones, the extra ones interleaved between the two alone, because "
            "sampling adds about as much as this machine's noise)"
            if meta.get("sampled_extra_repeat") else ""))
        + (" (CPU time of the whole process, every thread, so that other processes on the "
           "machine do not count)" if summary.clock == "cpu" else "") + ". *hs/tm added* is the time heapscope adds divided by the "
        "time CPython's tracemalloc adds at the same traceback depth (issue 4's target at "
        "nframe=1: at most 0.33); *n/m* where tracemalloc adds under "
        f"{MEANINGFUL_ADDED:.0%}, so the ratio would be noise.",
        "",
        _md_table(*slowdown_rows(summary)),
        "",
    ]
    if plot_name:
        lines += [f"![Slowdown per workload ({traced_labels}) and resident memory per "
                  f"traced block]({plot_name})", ""]
    if summary.memory or summary.memory_errors:
        lines += [
            "## Memory per traced block",
            "",
            f"Resident memory (RSS from `/proc/self/statm`) a fresh process gains while "
            f"allocating {meta.get('memory_objects', 0):,} small objects and keeping them "
            "alive, with the tracer started first; the untraced run's gain is subtracted and "
            "the rest divided by the number of blocks those objects added to the tracer's "
            "traces. Median of "
            f"{meta.get('memory_repeat', 1)} runs. This is what the operating system charges, "
            "not the tracer's own estimate.",
            "",
            _md_table(*memory_rows(summary, "see [Memory per sampled block]"
                                             "(#memory-per-sampled-block)")),
            "",
        ]
        if "memray" in summary.memory:
            size = summary.memory["memray"].get("memray_file_bytes")
            lines += [
                "\\* memray keeps almost nothing in memory: it streams every allocation to its "
                "capture file" + (f" ({_mib(size)} MiB for this run)" if size else "")
                + ", so its cost per block is on disk, not in RSS; the block count is the "
                "one CPython's tracemalloc counted for the same objects.",
                "",
            ]
    if summary.has_sparse():
        sampled, _ = summary.bytes_per_sampled_block()
        lines += [
            "## Memory per sampled block",
            "",
            "Sampling keeps about one block per 512 KiB allocated, too few among small "
            "objects to resolve what each costs. So the same measurement again with "
            f"{meta.get('memory_sparse_blocks', 0):,} blocks of 1 MiB made with "
            "`bytes(1 << 20)`: calloc'd and never written, each costs the program one page "
            "of RSS, so the untraced gain is small and steady while thousands of blocks are "
            "sampled. Exact tracing (heapscope nframe=1) is measured on the same blocks. "
            "The untraced run's gain is subtracted and the rest divided by the number of "
            "blocks traced. Median of "
            f"{meta.get('memory_sparse_repeat', meta.get('memory_repeat', 1))} runs. The last column "
            "is the growth of the tracer's own count (`get_tracemalloc_memory()`) per block "
            "in the same run; RSS differs from it because malloc serves the tracer partly "
            "from memory the process had freed, and the program's own allocations land "
            "elsewhere when the tracer's sit between them.",
            "",
            _md_table(*sparse_rows(summary)),
            "",
            f"Issue 6 target, per sampled block {_sparse_verdict(summary)}, with "
            f"{_bytes(sampled)}, judged on the same blocks; exact mode's figure on small "
            f"objects (first table) is {_bytes(summary.sampled_vs_exact()[2])}: dense "
            "pymalloc pools pack its traces tighter than sparse blocks can be.",
            "",
        ]
    lines += ["## Targets (issues 4 and 6)", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {s} | {m} | {mark} |" for s, m, mark in _target_lines(summary)]
    lines += [""]
    failures = _failures(summary)
    if failures:
        lines += ["## Not measured", ""] + [f"- {f}" for f in failures] + [""]
    lines += [
        "## Times",
        "",
        f"Seconds of {CLOCK_NAMES[summary.clock]} per configuration"
        + (" (of a traced run, its traced loops)" if summary.paired is not None else "")
        + ", minimum / median of the runs.",
        "",
    ]
    header = ["workload"] + [c.label for c in summary.configs]
    rows = []
    for w in summary.workloads:
        row = [w]
        for c in summary.configs:
            if c.key in summary.minimum[w]:
                row.append(f"{summary.minimum[w][c.key]:.3f} / {summary.median[w][c.key]:.3f}")
            else:
                row.append("n/a")
        rows.append(row)
    lines += [_md_table(header, rows), ""]
    if summary.paired is not None:
        lines += ["Geomean slowdown from whole runs instead of paired loops (minimum over "
                  "minimum, which this machine's speed jumps distort): " + ", ".join(
                      f"{c.label} {_x(summary.geomean(c.key, 'minimum'))}"
                      for c in summary.traced) + ".", ""]
    else:
        lines += ["Geomean slowdown from medians instead of minima: " + ", ".join(
            f"{c.label} {_x(summary.geomean(c.key, 'median'))}" for c in summary.traced) + ".", ""]
    other = "wall" if summary.clock == "cpu" else "cpu"
    if summary.results["times"].get(other):
        alt = Summary(summary.results, other)
        lines += [f"Geomean slowdown from {CLOCK_NAMES[other]} instead: " + ", ".join(
            f"{c.label} {_x(alt.geomean(c.key))}" for c in alt.traced) + ".", ""]
    lines += ["## Workloads", ""]
    lines += [f"- **{w}**: {summary.descriptions.get(w, '')}" for w in summary.workloads]
    lines += [
        "",
        "## Reproducing",
        "",
        "```sh",
        "python3 benchmarks/run.py --install     # full run (15-30 min): prints, writes this file and the plot",
        "python3 benchmarks/run.py --quick       # a minute or two, before landing a hot-path change",
        "python3 benchmarks/compare.py           # before/after: HEAD's build against the working tree's",
        "benchmarks/table_replay.sh --base REV   # trace table cost per operation (cachegrind, deterministic)",
        "python3 benchmarks/run.py --python ~/.pyenv/versions/3.12.1/bin/python --out /tmp/b312.md",
        "```",
        "",
        "See `python3 benchmarks/run.py --help` for choosing workloads, configurations and repeats.",
        "",
    ]
    return "\n".join(lines)


# --- the plot -----------------------------------------------------------------

COLOURS = {
    "tracemalloc-1": "#f4a582",
    "tracemalloc-25": "#ca0020",
    "memray": "#999999",
    "heapscope-1": "#92c5de",
    "heapscope-25": "#0571b0",
}


def plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    names = summary.workloads + ["geomean"]
    traced = summary.traced
    memory_keys = [k for k in ("tracemalloc-1", "heapscope-1", "memray")
                   if summary.bytes_per_block(k)[0] is not None]

    fig = plt.figure(figsize=(14, 6.5))
    grid = fig.add_gridspec(1, 2, width_ratios=[5, 1] if memory_keys else [1, 0.0001], wspace=0.18)
    ax = fig.add_subplot(grid[0])
    width = 0.8 / max(len(traced), 1)
    top = 1.0
    for i, c in enumerate(traced):
        values = [summary.slowdown(w, c.key) for w in summary.workloads] + [summary.geomean(c.key)]
        xs = [j + (i - (len(traced) - 1) / 2) * width for j in range(len(names))]
        present = [(x, v) for x, v in zip(xs, values) if v is not None]
        if present:
            ax.bar([x for x, _ in present], [v - 1 for _, v in present], width, bottom=1,
                   label=c.label, color=COLOURS.get(c.key, None), edgecolor="white", linewidth=0.4)
            top = max(top, max(v for _, v in present))
    ax.set_yscale("log")
    ticks = [t for t in (1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100) if t <= top * 1.5]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_ylim(0.95, top * 1.4)
    ax.axhline(1, color="black", linewidth=0.8)
    if summary.has("heapscope-1"):
        ax.axhline(TARGET_GEOMEAN_1, color="#0571b0", linewidth=0.8, linestyle=":",
                   label=f"target for heapscope nframe=1 ({TARGET_GEOMEAN_1}x geomean)")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.get_xticklabels()[-1].set_fontweight("bold")
    ax.axvline(len(names) - 1.5, color="grey", linewidth=0.6)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("slowdown against no tracing (log scale, lower is better)")
    ax.grid(axis="y", linewidth=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, ncol=3,
              frameon=False)
    meta = summary.meta
    ax.set_title(f"heapscope {meta['commit'].split()[0]} on {meta['python']}, "
                 f"{meta['nproc']} x {meta['cpu']}, {meta['date'][:10]} "
                 + (f"(median paired ratio of {CLOCK_NAMES[summary.clock]}, {meta['repeat']} runs)"
                    if summary.paired is not None else
                    f"(minimum {CLOCK_NAMES[summary.clock]} of {meta['repeat']} runs)"), fontsize=10)

    if memory_keys:
        mx = fig.add_subplot(grid[1])
        values = [summary.bytes_per_block(k)[0] for k in memory_keys]
        labels = [configs_module.BY_KEY[k].label.replace(" (Python allocators)", "*")
                  .replace(" nframe=1", "") for k in memory_keys]
        bars = mx.bar(range(len(values)), values, 0.6,
                      color=[COLOURS.get(k) for k in memory_keys])
        for b, v in zip(bars, values):
            mx.text(b.get_x() + b.get_width() / 2, max(v, 0), f"{v:.0f}", ha="center",
                    va="bottom", fontsize=9)
        mx.axhline(TARGET_BYTES_PER_BLOCK, color="#0571b0", linewidth=0.8, linestyle=":")
        mx.text(len(values) - 0.6, TARGET_BYTES_PER_BLOCK, f"target {TARGET_BYTES_PER_BLOCK}",
                ha="right", va="bottom", fontsize=8, color="#0571b0")
        mx.set_xticks(range(len(values)))
        mx.set_xticklabels(labels, rotation=30, ha="right")
        mx.set_ylabel("RSS added per traced block (bytes)")
        mx.set_title("RSS per traced block\n(1M objects, nframe=1)", fontsize=10)
        mx.set_ylim(0, max(values + [TARGET_BYTES_PER_BLOCK]) * 1.15)
        mx.grid(axis="y", linewidth=0.3)
        if "memray" in memory_keys:
            mx.set_xlabel("* memray streams its\nrecords to a file", fontsize=8)

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return os.path.abspath(path)
