"""Does reading a whole organisation cost the emulator the same per page at any size?

For each size N it starts a fresh emulator in its own process
(`python -m avatarsync emulator --port 0 --db :memory:`), seeds N characters, each
with its own brain, sharing 3 faces, 10 voices and 3 knowledge bases (at zero
latency), then switches `latencyMs` on through the admin endpoint and reads
everything back with a raw httpx reader: the first page of each of the 5 kinds at
once, then every remaining page with at most C requests in flight.

It prints, per N: the pages read (P), the wall time of the read, the lower bound
`L * (1 + ceil((P - k) / C))` (k = 5 kinds, C in flight, L the latency), their
ratio, and the emulator process's CPU seconds during the read (from
/proc/<pid>/stat; psutil if /proc is missing), in total and per page, and the
reader's own CPU (the two share the machine's cores). A flat CPU
per page from 1,000 to 10,000 characters means no request's cost grows with the
organisation; a ratio near 1 means the emulator is never what the reader waits for.

    .venv/bin/python benchmarks/emulator_paging.py [--sizes 1000,10000] [--latency-ms 50]
        [--parallel 10] [--take 50]

`--pythonpath /path/to/other/checkout` measures another version of the emulator
with the same reader (e.g. `git worktree add /tmp/before <commit>`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.util
import json
import math
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# httpcore asks `import sniffio` on every request; when it is not installed, each
# failed import searches sys.path again (~0.3 ms, a third of the reader's CPU).
# A None entry makes the same ImportError instant; httpcore then uses asyncio, as
# it would anyway.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

import httpx

__all__ = ["main"]

KEY = {"x-api-key": "local-emulator-key"}
KINDS = {  # path -> list key
    "faces": "faces",
    "voices": "voices",
    "brains": "brains",
    "knowledge-bases": "items",
    "characters": "characters",
}
VOICES = (
    "Puck",
    "Kore",
    "Charon",
    "Aoede",
    "Fenrir",
    "Leda",
    "Orus",
    "Zephyr",
    "Schedar",
    "Umbriel",
)


@dataclass
class Read:
    pages: int
    items: int
    wall: float
    cpu: float  # the emulator's
    reader_cpu: float


@dataclass
class Result:
    n: int
    reads: list[Read]
    bound: float

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.reads)

    @property
    def pages(self) -> int:
        return self.reads[0].pages

    def mean(self, field: str) -> float:
        return statistics.fmean(getattr(r, field) for r in self.reads)


def _spawn(pythonpath: str | None) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarsync", "emulator", "--port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        # Not the checkout: `python -m` puts the working directory first on sys.path,
        # which would shadow --pythonpath.
        cwd=tempfile.gettempdir(),
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("avatarsync emulator listening on "):
        process.kill()
        raise RuntimeError(f"emulator did not start (first line {line!r})")
    return process, line.split(" on ", 1)[1].strip()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces: fields start after the last ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        import psutil  # type: ignore[import-not-found,unused-ignore]

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _seed(url: str, n: int, threads: int = 8) -> None:
    """Create the organisation through the API, over keep-alive stdlib connections.

    (httpx's async pool costs the client ~4 ms per request here, which made
    seeding 10,000 characters take 90 s; the reader below is httpx, as it
    should be, since it is what the measured phase is about.)
    """
    parts = urlsplit(url)
    local = threading.local()

    def post(path: str, body: dict[str, Any]) -> str:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        conn.request("POST", path, json.dumps(body), {**KEY, "content-type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST {path}: {response.status} {payload[:200]!r}")
        return str(json.loads(payload)["id"])

    faces = [post("/v3/faces", {"identity": "tommy"}) for _ in range(3)]
    voices = [post("/v3/voices", {"identity": v}) for v in VOICES]
    kbs = [post("/v3/knowledge-bases", {"name": f"kb{i}", "description": "d"}) for i in range(3)]

    def one(i: int) -> None:
        brain = post(
            "/v3/brains", {"instructions": f"You are character {i}.", "greetingMessage": "Hello!"}
        )
        post(
            "/v3/characters",
            {
                "name": f"Character {i}",
                "livekitIdentity": f"character-{i}",
                "faceId": faces[i % 3],
                "voiceId": voices[i % 10],
                "brainId": brain,
                "knowledgeBaseId": kbs[i % 3],
            },
        )

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, range(n)):
            pass


async def _read_all(url: str, parallel: int, take: int, pid: int) -> Read:
    """Read every page of every kind once, checking what it read; time only the reading
    (the clients, their SSL contexts included, are built before the clock starts).

    `parallel` workers, each with its own single-connection httpx client, take pages
    from one queue: at most `parallel` requests in flight. (One shared client with a
    pool of `parallel` connections does the same, but its pool bookkeeping costs the
    reader ~4 ms of CPU per request, more than the emulator spends answering it.)
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url, headers=KEY, limits=limits, timeout=60, trust_env=False
                )
            )
            for _ in range(parallel)
        ]

        async def page(http: httpx.AsyncClient, path: str, skip: int) -> dict[str, Any]:
            response = await http.get(f"/v3/{path}", params={"take": take, "skip": skip})
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        cpu_before, reader_before = _cpu_seconds(pid), _own_cpu_seconds()
        began = time.perf_counter()
        firsts = await asyncio.gather(
            *(page(http, path, 0) for http, path in zip(clients, KINDS, strict=False))
        )
        seen: dict[str, list[str]] = {
            path: [o["id"] for o in first[KINDS[path]]]
            for path, first in zip(KINDS, firsts, strict=True)
        }
        totals = {path: first["total"] for path, first in zip(KINDS, firsts, strict=True)}
        rest = [(path, skip) for path in KINDS for skip in range(take, totals[path], take)]
        queue = iter(rest)

        async def worker(http: httpx.AsyncClient) -> None:
            for path, skip in queue:  # shared: each page is taken by one worker
                body = await page(http, path, skip)
                seen[path].extend(o["id"] for o in body[KINDS[path]])

        await asyncio.gather(*(worker(http) for http in clients))
        wall = time.perf_counter() - began
        cpu, reader_cpu = _cpu_seconds(pid) - cpu_before, _own_cpu_seconds() - reader_before
    for path, ids in seen.items():
        if len(ids) != totals[path] or len(set(ids)) != len(ids):
            raise RuntimeError(
                f"{path}: read {len(ids)} ids ({len(set(ids))} distinct) of {totals[path]}"
            )
    return Read(len(KINDS) + len(rest), sum(totals.values()), wall, cpu, reader_cpu)


def run(
    n: int, *, latency_ms: int, parallel: int, take: int, reads: int, pythonpath: str | None
) -> Result:
    process, url = _spawn(pythonpath)
    try:
        began = time.perf_counter()
        _seed(url, n)
        seeded = time.perf_counter() - began
        answer = httpx.post(
            f"{url}/_emulator/faults", json={"latencyMs": latency_ms}, trust_env=False
        )
        answer.raise_for_status()
        done = [asyncio.run(_read_all(url, parallel, take, process.pid)) for _ in range(reads)]
    finally:
        process.terminate()
        process.wait(10)
    pages = done[0].pages
    bound = latency_ms / 1000 * (1 + math.ceil((pages - len(KINDS)) / parallel))
    print(
        f"  N={n:>6,}: seeded {2 * n + 16:,} objects in {seeded:.1f}s; read walls "
        + ", ".join(f"{r.wall:.2f}" for r in done)
        + " s",
        flush=True,
    )
    return Result(n, done, bound)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10, help="requests in flight (C)")
    parser.add_argument("--take", type=int, default=50)
    parser.add_argument("--reads", type=int, default=3, help="reads of the whole organisation")
    parser.add_argument(
        "--pythonpath",
        help="import the emulator from this directory (e.g. an older checkout) instead",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"latency {args.latency_ms} ms, {args.parallel} in flight, take {args.take}, "
        f"{len(KINDS)} kinds; emulator: {sys.executable} -m avatarsync emulator"
        + (f" from {args.pythonpath}" if args.pythonpath else "")
    )
    results = [
        run(
            n,
            latency_ms=args.latency_ms,
            parallel=args.parallel,
            take=args.take,
            reads=args.reads,
            pythonpath=args.pythonpath,
        )
        for n in sizes
    ]
    print(
        f"per read (median wall of {args.reads}; CPU means):\n"
        f"{'N':>7} {'pages':>6} {'wall s':>7} {'bound s':>8} {'ratio':>6}"
        f" {'emu CPU s':>10} {'CPU ms/page':>12} {'reader CPU s':>13}"
    )
    for r in results:
        cpu = r.mean("cpu")
        print(
            f"{r.n:>7,} {r.pages:>6} {r.wall:>7.2f} {r.bound:>8.2f} {r.wall / r.bound:>6.2f}"
            f" {cpu:>10.3f} {1000 * cpu / r.pages:>12.2f} {r.mean('reader_cpu'):>13.2f}"
        )


if __name__ == "__main__":
    main()
