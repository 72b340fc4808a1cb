"""Two runners apply the same project to one environment at once, state in PostgreSQL.

    python benchmarks/lock_wait.py [--n 200] [--latency-ms 50]

Starts a real PostgreSQL cluster (initdb + pg_ctl, as the tests do) and the
emulator in its own process, writes a project of N characters (each with its
own brain; 3 faces, 10 voices, 3 knowledge bases shared), then starts two
`avatarsync apply --lock-timeout 300` processes 0.3 s apart. Prints when each
started and ended, when the second one reported its wait (and what it said
of the holder), what it then planned, and the live objects counted with the
emulator's admin API against the manifests: duplicates must be 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import scale  # noqa: E402  (this folder's benchmark: the emulator and the project)
from support.servers import PostgresServer, find_postgres_bin  # noqa: E402


class Runner:
    """One `avatarsync apply` child; its stderr lines timestamped as they arrive."""

    def __init__(self, root: Path, env: dict[str, str], t0: float) -> None:
        self.t0 = t0
        self.started = time.perf_counter() - t0
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avatarsync", "-C", str(root), "apply", "--env", "bench",
             "--yes", "--lock-timeout", "300"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter() - self.t0, line.rstrip()))

    def finish(self) -> tuple[int, float, str]:
        out, _ = self.proc.communicate(timeout=900)
        self.reader.join()
        return self.proc.returncode, time.perf_counter() - self.t0, out

    def first(self, text: str) -> tuple[float, str] | None:
        return next(((t, line) for t, line in self.lines if text in line), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
    pg = PostgresServer(bin_dir).start()
    emulator = scale.Emulator(latency_ms=args.latency_ms)
    root = Path(tempfile.mkdtemp(prefix="avatarsync-lockwait-"))
    try:
        scale.write_project(root, args.n, emulator.url)
        project_file = root / "avatarsync.yaml"
        project_file.write_text(
            "name: lockwait\n"
            + project_file.read_text()
            + "    state: {backend: postgres, urlEnv: BENCH_STATE_PG}\n"
        )
        env = {
            **os.environ,
            "BENCH_KEY": scale.KEY,
            "BENCH_STATE_PG": pg.url(pg.create_database()),
            "NO_COLOR": "1",
        }
        t0 = time.perf_counter()
        first = Runner(root, env, t0)
        time.sleep(0.3)
        second = Runner(root, env, t0)
        results = [first.finish(), second.finish()]
        live = emulator.count()
        expected = scale.expected_counts(args.n)
        print(f"N = {args.n}, emulator latency {args.latency_ms} ms, state in PostgreSQL")
        for name, runner, (code, ended, out) in zip("AB", (first, second), results, strict=True):
            summary = next((x for x in reversed(out.splitlines()) if x.strip()), "")
            print(f"runner {name}: started {runner.started:5.2f} s, ended {ended:6.2f} s, "
                  f"exit {code}: {summary}")  # fmt: skip
            waited = runner.first("waiting for the lock")
            if waited is not None:
                print(f"  wait reported at {waited[0]:5.2f} s: {waited[1][:220]}")
        duplicates = sum(max(0, live[k] - expected[k]) for k in expected)
        missing = sum(max(0, expected[k] - live[k]) for k in expected)
        print(f"live objects {sum(live.values())} (manifests {sum(expected.values())}): "
              f"{duplicates} duplicates, {missing} missing; by kind {dict(Counter(live))}")  # fmt: skip
    finally:
        emulator.close()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
