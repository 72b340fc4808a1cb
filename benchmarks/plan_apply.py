"""Plan/apply figures against the embedded emulator, side by side in one run.

    python benchmarks/plan_apply.py [--characters 40] [--latency-ms 20]

Prints, for one synthetic organisation (N characters, each with its own
brain and voice, sharing one face and one knowledge base):
- apply from empty at parallelism 1 and at 10, wall time and the ratio;
- the requests a no-op plan makes, and its wall time;
- the peak in-flight requests the emulator saw (must stay <= parallelism).
Ratios, not absolute times, are the claim: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer
from avatarsync.planning.apply import apply_plan
from avatarsync.planning.builder import PlanOptions, build_plan
from avatarsync.planning.live import fetch_live
from avatarsync.providers.equos import EquosClient
from avatarsync.resources import (
    REFERENCE_FIELDS,
    Address,
    DesiredResource,
    DesiredState,
    DocumentSpec,
    Position,
)
from avatarsync.secret import Secret
from avatarsync.state import FileStateStore

POS = Position("bench.yaml", 1, 1)


def organisation(n: int, client: str, tmp: Path) -> DesiredState:
    doc_path = tmp / "faq.md"
    doc_path.write_bytes(b"# FAQ\n" * 50)
    doc = DocumentSpec(
        "faq.md",
        None,
        "text/markdown",
        doc_path,
        hashlib.sha256(doc_path.read_bytes()).hexdigest(),
        doc_path.stat().st_size,
    )
    out = [
        _res("Face", "face", {"identity": "tommy"}),
        _res("KnowledgeBase", "faq", {"displayName": "FAQ", "description": None}, docs=(doc,)),
    ]
    for i in range(n):
        out.append(_res("Brain", f"b{i}", {"instructions": f"Brain {i}.", "greetingMessage": None}))
        out.append(_res("Voice", f"v{i}", {"identity": "Puck", "instructions": f"voice {i}"}))
        out.append(
            _res(
                "Character",
                f"c{i}",
                {
                    "displayName": f"Character {i}",
                    "livekitIdentity": f"c{i}",
                    "face": "face",
                    "voice": f"v{i}",
                    "brain": f"b{i}",
                    "knowledgeBase": "faq",
                    "search": False,
                    "elevenlabsAgentId": None,
                },
            )
        )
    return DesiredState("bench", client, {r.address: r for r in out})


def _res(kind: str, key: str, spec: dict, docs: tuple = ()) -> DesiredResource:
    refs = {
        f: Address(k.value, spec[f])
        for f, k in REFERENCE_FIELDS.items()
        if kind == "Character" and spec.get(f)
    }
    return DesiredResource(Address(kind, key), spec, POS, refs=refs, documents=docs)


async def cycle(url: str, desired: DesiredState, store: FileStateStore, parallelism: int):
    async with EquosClient(url, Secret(DEFAULT_API_KEY), max_concurrency=parallelism) as client:
        state = store.load()
        t0 = time.perf_counter()
        live = await fetch_live(client, desired.client)
        plan = build_plan(desired, live, state, options=PlanOptions(), plan_id="b", created_at="t")
        plan_seconds = time.perf_counter() - t0
        plan_requests = client.total_requests
        report = await apply_plan(plan, desired, client, store, state, parallelism=parallelism)
        store.compact(state)
        report.requests = client.total_requests - plan_requests
        return plan, report, plan_seconds, plan_requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--characters", type=int, default=40)
    ap.add_argument("--latency-ms", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with EmulatorServer(EmulatorConfig(latency_ms=args.latency_ms)) as server:
        rows = []
        for parallelism in (1, 10):
            client = f"bench-p{parallelism}"
            desired = organisation(args.characters, client, tmp)
            store = FileStateStore(tmp / f"{client}.json", environment="bench", client=client)
            server.reset_stats()
            t0 = time.perf_counter()
            _, report, _, _ = asyncio.run(cycle(server.url, desired, store, parallelism))
            seconds = time.perf_counter() - t0
            assert report.ok, report.error
            peak = server.stats()["peakInFlight"]
            rows.append((parallelism, seconds, report.requests, peak))
            # the no-op plan right after
            server.reset_stats()
            noop, _, plan_seconds, plan_requests = asyncio.run(
                cycle(server.url, desired, store, parallelism)
            )
            assert not noop.has_changes
            noop_stats = (plan_requests, plan_seconds)

        n = len(organisation(args.characters, "x", tmp).resources)
        print(
            f"organisation: {n} resources ({args.characters} characters), "
            f"emulator latency {args.latency_ms} ms per request"
        )
        for parallelism, seconds, requests, peak in rows:
            print(
                f"apply from empty, parallelism {parallelism:>2}: {seconds:6.2f} s, "
                f"{requests} requests, peak in flight {peak}"
            )
        print(f"speed-up parallelism 10 vs 1: {rows[0][1] / rows[1][1]:.1f}x")
        print(f"no-op plan: {noop_stats[0]} requests, {noop_stats[1]:.2f} s")


if __name__ == "__main__":
    main()
