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
/proc/<pid>/stat; psutil if /proc is missing), in total and per page. A flat CPU
per page from 1,000 to 10,000 characters means no request's cost grows with the
organisation; a ratio near 1 means the emulator is never what the reader waits for.

    .venv/bin/python benchmarks/emulator_paging.py [--sizes 1000,10000] [--latency-ms 50]
        [--parallel 10] [--take 50]

The emulator process inherits the environment, so `PYTHONPATH=/path/to/other/checkout`
measures another version of the emulator with the same reader.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

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
class Result:
    n: int
    pages: int
    items: int
    wall: float
    bound: float
    cpu: float


def _spawn() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarsync", "emulator", "--port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
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


async def _seed(url: str, n: int, concurrency: int = 16) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=KEY, limits=limits, timeout=60, trust_env=False
    ) as http:

        async def post(path: str, body: dict[str, Any]) -> str:
            response = await http.post(path, json=body)
            response.raise_for_status()
            return str(response.json()["id"])

        faces = [await post("/v3/faces", {"identity": "tommy"}) for _ in range(3)]
        voices = [await post("/v3/voices", {"identity": v}) for v in VOICES]
        kbs = [
            await post("/v3/knowledge-bases", {"name": f"kb{i}", "description": "d"})
            for i in range(3)
        ]
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                brain = await post(
                    "/v3/brains",
                    {"instructions": f"You are character {i}.", "greetingMessage": "Hello!"},
                )
                await post(
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

        await asyncio.gather(*(one(i) for i in range(n)))


async def _read_all(url: str, parallel: int, take: int) -> tuple[int, int]:
    """Read every page of every kind; return (pages, items). Checks what it read."""
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    async with httpx.AsyncClient(
        base_url=url, headers=KEY, limits=limits, timeout=60, trust_env=False
    ) as http:

        async def page(path: str, skip: int) -> dict[str, Any]:
            response = await http.get(f"/v3/{path}", params={"take": take, "skip": skip})
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        firsts = await asyncio.gather(*(page(path, 0) for path in KINDS))
        seen: dict[str, list[str]] = {
            path: [o["id"] for o in first[KINDS[path]]]
            for path, first in zip(KINDS, firsts, strict=True)
        }
        totals = {path: first["total"] for path, first in zip(KINDS, firsts, strict=True)}
        rest = [(path, skip) for path in KINDS for skip in range(take, totals[path], take)]
        gate = asyncio.Semaphore(parallel)

        async def later(path: str, skip: int) -> None:
            async with gate:
                body = await page(path, skip)
            seen[path].extend(o["id"] for o in body[KINDS[path]])

        await asyncio.gather(*(later(path, skip) for path, skip in rest))
    for path, ids in seen.items():
        if len(ids) != totals[path] or len(set(ids)) != len(ids):
            raise RuntimeError(
                f"{path}: read {len(ids)} ids ({len(set(ids))} distinct) of {totals[path]}"
            )
    return len(KINDS) + len(rest), sum(totals.values())


def run(n: int, *, latency_ms: int, parallel: int, take: int) -> Result:
    process, url = _spawn()
    try:
        began = time.perf_counter()
        asyncio.run(_seed(url, n))
        seeded = time.perf_counter() - began
        httpx.post(f"{url}/_emulator/faults", json={"latencyMs": latency_ms}, trust_env=False)
        cpu_before = _cpu_seconds(process.pid)
        began = time.perf_counter()
        pages, items = asyncio.run(_read_all(url, parallel, take))
        wall = time.perf_counter() - began
        cpu = _cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(10)
    bound = latency_ms / 1000 * (1 + math.ceil((pages - len(KINDS)) / parallel))
    print(f"  N={n:>6,}: seeded {2 * n + 16:,} objects in {seeded:.1f}s", flush=True)
    return Result(n, pages, items, wall, bound, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10, help="requests in flight (C)")
    parser.add_argument("--take", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"latency {args.latency_ms} ms, {args.parallel} in flight, take {args.take}, "
        f"{len(KINDS)} kinds; emulator: {sys.executable} -m avatarsync emulator"
    )
    results = [
        run(n, latency_ms=args.latency_ms, parallel=args.parallel, take=args.take) for n in sizes
    ]
    print(
        f"{'N':>7} {'pages':>6} {'items':>7} {'wall s':>7} {'bound s':>8} {'ratio':>6}"
        f" {'emu CPU s':>10} {'CPU ms/page':>12}"
    )
    for r in results:
        print(
            f"{r.n:>7,} {r.pages:>6} {r.items:>7,} {r.wall:>7.2f} {r.bound:>8.2f}"
            f" {r.wall / r.bound:>6.2f} {r.cpu:>10.2f} {1000 * r.cpu / r.pages:>12.2f}"
        )


if __name__ == "__main__":
    main()
