"""What the benchmark ran on, and getting the target Python ready.

Facts for the report (date, Python, machine, heapscope's commit), the
benchmark's own dependencies (``requirements.txt``), and a check that the
heapscope installed in the target Python was built from the current tree.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REQUIREMENTS = os.path.join(HERE, "requirements.txt")

# Module to import -> requirement line in requirements.txt, and which Python
# needs it: the one timed ("target") or the one running run.py ("harness").
DEPENDENCIES = {
    "pyperformance": "target",   # the benchmark programs (and pyperf they import)
    "memray": "target",          # a configuration
    "matplotlib": "harness",     # the plot
}


def requirement_lines():
    lines = {}
    with open(REQUIREMENTS) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name = line.split(">", 1)[0].split("<", 1)[0].split("=", 1)[0].strip()
                lines[name] = line
    return lines


def run_python(python, code, timeout=120):
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=child_environment())
    if proc.returncode != 0:
        raise RuntimeError(last_line(proc.stderr) or f"{python} exited {proc.returncode}")
    return proc.stdout


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def child_environment():
    """The environment of every child: no startup tracing from the outside,
    and a fixed hash seed so dict and set layouts repeat from run to run."""
    env = dict(os.environ)
    for name in ("PYTHONTRACEMALLOC", "PYTHONDEVMODE", "PYTHONMALLOC",
                 "PYTHONMALLOCSTATS", "HEAPSCOPE_TRACE"):
        env.pop(name, None)
    env["PYTHONHASHSEED"] = "0"
    return env


def missing_modules(python, modules):
    code = ("import importlib.util, json; "
            f"print(json.dumps([m for m in {list(modules)!r} "
            "if importlib.util.find_spec(m) is None]))")
    return json.loads(run_python(python, code))


def pip_install(python, args, log):
    command = [python, "-m", "pip", "install", "-q", *args]
    log("installing: " + " ".join(command))
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return last_line(proc.stderr) or f"pip exited {proc.returncode}"
    return None


def ensure_dependencies(target, install, log):
    """Install what requirements.txt lists and a Python lacks.

    Returns {module: reason} for what is still missing afterwards."""
    requirements = requirement_lines()
    problems = {}
    for python, side in ((target, "target"), (sys.executable, "harness")):
        wanted = [m for m, s in DEPENDENCIES.items() if s == side]
        missing = missing_modules(python, wanted)
        if missing and install:
            for module in missing:
                error = pip_install(python, [requirements[module]], log)
                if error:
                    problems[module] = f"pip install {requirements[module]} failed: {error}"
            missing = missing_modules(python, wanted)
        for module in missing:
            problems.setdefault(module, f"{module} is not installed for {python} "
                                        f"(pip install -r {os.path.relpath(REQUIREMENTS)})")
    return problems


def ensure_heapscope(target, reinstall, log):
    """Install heapscope from this tree if asked or missing; return a warning
    (or None) when the installed copy looks older than the tree."""
    if reinstall or missing_modules(target, ["heapscope"]):
        error = pip_install(target, [REPO], log)
        if error:
            return f"installing heapscope from {REPO} failed: {error}"
    return staleness(target)


def staleness(target):
    code = ("import heapscope, os, json; d = os.path.dirname(heapscope.__file__); "
            "print(json.dumps({f: os.path.getmtime(os.path.join(d, f)) for f in os.listdir(d) "
            "if f.endswith(('.py', '.so'))}))")
    try:
        installed = json.loads(run_python(target, code))
    except RuntimeError as e:
        return f"heapscope does not import in {target}: {e}"
    if not installed:
        return None
    installed_at = min(installed.values())
    newer = []
    for root in ("src", "python", "CMakeLists.txt", "pyproject.toml"):
        path = os.path.join(REPO, root)
        for dirpath, _, files in os.walk(path) if os.path.isdir(path) else [("", [], [path])]:
            for name in files:
                full = os.path.join(dirpath, name)
                if os.path.getmtime(full) > installed_at:
                    newer.append(os.path.relpath(full, REPO))
    if newer:
        shown = ", ".join(sorted(newer)[:3]) + (" ..." if len(newer) > 3 else "")
        return (f"the installed heapscope is older than {len(newer)} file(s) of the tree "
                f"({shown}); rerun with --install to measure the tree as it is")
    return None


def git(*args):
    try:
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                              text=True, timeout=30).stdout.strip()
    except OSError:
        return ""


def heapscope_commit():
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "python",
                "CMakeLists.txt", "pyproject.toml")
    return commit + (" + uncommitted changes in src/ or python/" if dirty else "")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total():
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def python_version(python):
    code = "import platform, sys; print(platform.python_implementation(), sys.version.split()[0])"
    return run_python(python, code).strip()


def describe(target):
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "python": python_version(target),
        "python_path": target,
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": memory_total(),
        "kernel": platform.release(),
        "commit": heapscope_commit(),
        "load_before": os.getloadavg()[0],
    }
