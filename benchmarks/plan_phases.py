"""Where a no-op plan's CPU goes, phase by phase, at N characters.

    python benchmarks/plan_phases.py [--n 10000] [--latency-ms 50] [--runs 2]

Seeds an emulator (its own process) with scale.py's project through a cold
apply at zero latency, switches the latency on, then plans in this process
and prints, per run, the wall time and the CPU of the thread that did each
phase: imports, state load, loading the YAML, resolving it, building the
plan; the live read is what remains of the plan's process CPU (it runs on
the event loop while the manifests resolve in a worker thread). For the
figures that carry targets, run scale.py; this one says where to look.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

started_wall, started_cpu = time.perf_counter(), time.process_time()
from avatarsync import api  # noqa: E402  (imports are the first phase measured)

IMPORTS = (time.perf_counter() - started_wall, time.process_time() - started_cpu)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402

PHASES: dict[str, float] = {}


def timed(module: Any, name: str, label: str) -> None:
    """Wrap `module.name` so each call adds its thread CPU to PHASES[label]."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[label] = PHASES.get(label, 0.0) + time.thread_time() - cpu

    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    import avatarsync.api as facade

    for name, label in (
        ("load_manifests", "load YAML"),
        ("resolve_environment", "resolve"),
        ("build_plan", "build plan"),
    ):
        timed(facade, name, label)
    emulator = scale.Emulator(latency_ms=0)
    root = Path(tempfile.mkdtemp(prefix="avatarsync-phases-"))
    try:
        scale.write_project(root, args.n, emulator.url)
        seeded = scale.cli(root, "apply", "--env", "bench", "--yes", "--parallelism", "10")
        if seeded.code != 0:
            raise SystemExit(f"seeding failed:\n{seeded.err[-2000:]}")
        emulator.faults(latencyMs=args.latency_ms)
        os.environ["BENCH_KEY"] = scale.KEY
        print(f"N = {args.n}, latency {args.latency_ms} ms; seeded in {seeded.wall:.1f} s")
        print(f"imports: wall {IMPORTS[0]:.2f} s, CPU {IMPORTS[1]:.2f} s")
        for run in range(1, args.runs + 1):
            PHASES.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            project = api.load_project(root)
            with api.Workspace(project, "bench") as workspace:
                state_cpu = time.thread_time()
                workspace.store.load()
                PHASES["state load"] = time.thread_time() - state_cpu
                workspace.plan()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            read = cpu - sum(PHASES.values())
            shown = ", ".join(f"{k} {v:.2f}" for k, v in PHASES.items())
            print(
                f"run {run}: wall {wall:.2f} s, CPU {cpu:.2f} s = {shown}, live read and rest {read:.2f}"
            )
    finally:
        emulator.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
