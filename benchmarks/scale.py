"""Plan and apply at 100, 1,000 and 10,000 characters, next to the network's limit.

    python benchmarks/scale.py                      # the whole table, writes benchmarks/RESULTS.md
    python benchmarks/scale.py --sizes 100,1000     # fewer sizes
    python benchmarks/scale.py --quick              # N = 100, 5 ms latency: what .ci/run checks

Each size gets a fresh emulator in its own process (`--latency-ms 50` unless
told otherwise) and a generated project: N characters, each with its own
brain, sharing 3 faces, 10 voices and 3 knowledge bases (one document each).
The CLI runs as a child process, as a user runs it, and the scenarios are:

    cold apply      apply --yes into the empty organisation
    no-op plan      plan, nothing to do (median of --repeat runs)
    10% edit        plan, then apply, with one brain in ten edited
    10% prune       apply --prune, one character in ten (and its brain) removed
    rate-limited    cold apply at N = 300 with --rate-limit on the emulator, its
                    bucket spent first (steady state: throughput vs the limit)
    faulty          cold apply at N = 100 with --error-rate 0.1 (then one re-run)

Per scenario: wall time; the requests the emulator counted, by method, and the
minimum the work needs; the lower bound and the ratio to it; the client's CPU
seconds and peak RSS (from wait4 on the child); the emulator's peak in-flight
(never above --parallelism); retries (requests beyond the minimum);
duplicates (live objects beyond the manifests: must be 0); and whether the
next plan is empty.

Lower bounds (L the latency, C the parallelism): a read of P list pages needs
L * (1 + ceil((P - k) / C)), k = 5 kinds whose first pages go out together;
W writes need L * max(depth, ceil(W / C)), depth the longest chain of
dependent requests. An apply plans first, so its bound adds the read's.

The baseline a user would otherwise write: a sequential script with the
official `equos` SDK (its default page size, one call at a time) doing the
same no-op read and the same 10% brain updates, at N = 100 and 1,000, run
interleaved with avatarsync against the same emulator; the table shows the
speed-up. Only ratios measured side by side mean anything: the machine is
shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY = "bench-key-0123456789"
CLIENT = "bench"
KINDS = {
    "Face": "faces",
    "Voice": "voices",
    "Brain": "brains",
    "KnowledgeBase": "knowledge-bases",
    "Character": "characters",
}
VOICES = [
    "Puck",
    "Kore",
    "Charon",
    "Aoede",
    "Leda",
    "Orus",
    "Zephyr",
    "Fenrir",
    "Gacrux",
    "Iapetus",
]
PAGE = 50
ROOT = Path(__file__).resolve().parents[1]


# --- the emulator, in its own process -------------------------------------------------


class Emulator:
    def __init__(self, *, latency_ms: int, extra: list[str] = ()) -> None:  # type: ignore[assignment]
        command = [
            sys.executable, "-m", "avatarsync", "emulator", "--port", "0", "--db", ":memory:",
            "--api-key", KEY, *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", first)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"the emulator did not start: {first!r}")
        self.url = match.group(1)
        self.faults(latencyMs=latency_ms)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method="POST" if data is not None else "GET"
        )
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def faults(self, **switches: Any) -> None:
        self.admin("/_emulator/faults", switches)

    def stats(self) -> dict[str, Any]:
        return self.admin("/_emulator/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.admin("/_emulator/stats/reset", {})

    def count(self) -> Counter[str]:
        """Live objects with our client, by kind (read with the latency off)."""
        saved = self.admin("/_emulator/faults")
        self.faults(latencyMs=0, rateLimit=None, errorRate=0.0)
        counts: Counter[str] = Counter()
        for kind, path in KINDS.items():
            request = urllib.request.Request(
                f"{self.url}/v3/{path}?take=1&client={CLIENT}", headers={"x-api-key": KEY}
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                counts[kind] = json.loads(answer.read())["total"]
        self.faults(
            latencyMs=saved["latencyMs"], rateLimit=saved["rateLimit"], errorRate=saved["errorRate"]
        )
        return counts

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- the project ----------------------------------------------------------------------


def write_project(
    root: Path, n: int, url: str, *, edited: int = 0, removed: int = 0, edit_text: str = "edited"
) -> None:
    """N characters, each with its own brain; 3 faces, 10 voices, 3 knowledge bases shared.
    The first `edited` brains have new instructions; the last `removed` characters
    (and their brains) are gone."""
    (root / "characters").mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir(exist_ok=True)
    (root / "avatarsync.yaml").write_text(
        f'manifests: ["shared.yaml", "characters/*.yaml"]\n'
        f"environments:\n  bench:\n    url: {url}\n    apiKeyEnv: BENCH_KEY\n    client: {CLIENT}\n"
    )
    shared = []
    for i in range(3):
        (root / "docs" / f"kb{i}.md").write_text(f"# Knowledge base {i}\n" + "Answer.\n" * 40)
        shared.append(f"kind: Face\nname: face{i}\nspec: {{identity: tommy}}\n")
        shared.append(
            f"kind: KnowledgeBase\nname: kb{i}\nspec:\n  displayName: KB {i}\n"
            f"  description: Shared answers {i}.\n  documents:\n    - path: docs/kb{i}.md\n"
        )
    for i, voice in enumerate(VOICES):
        shared.append(
            f"kind: Voice\nname: voice{i}\nspec: {{identity: {voice}, instructions: Calm {i}.}}\n"
        )
    (root / "shared.yaml").write_text("---\n".join(shared))
    for old in (root / "characters").glob("*.yaml"):
        old.unlink()
    kept = n - removed
    for chunk in range(0, kept, 1000):
        docs = []
        for i in range(chunk, min(chunk + 1000, kept)):
            text = f"Brain {i}, {edit_text}." if i < edited else f"Brain {i}."
            docs.append(
                f"kind: Brain\nname: brain{i}\nspec: {{instructions: '{text}', greetingMessage: Hi}}\n"
                f"---\nkind: Character\nname: char{i}\nspec:\n  displayName: Character {i}\n"
                f"  livekitIdentity: char-{i}\n  face: face{i % 3}\n  voice: voice{i % 10}\n"
                f"  brain: brain{i}\n  knowledgeBase: kb{i % 3}\n"
            )
        (root / "characters" / f"c{chunk // 1000:03d}.yaml").write_text("---\n".join(docs))


def expected_counts(n: int) -> Counter[str]:
    return Counter({"Face": 3, "Voice": 10, "KnowledgeBase": 3, "Brain": n, "Character": n})


# --- running the CLI as a child -------------------------------------------------------


@dataclass
class Run:
    code: int
    wall: float
    cpu: float  # user + system seconds of the child
    rss_mb: float  # peak resident set of the child
    out: str
    err: str


def cli(root: Path, *args: str, timeout: float = 3600) -> Run:
    env = {**os.environ, "BENCH_KEY": KEY, "NO_COLOR": "1"}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avatarsync", "-C", str(root), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            proc.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            out.read(),
            err.read(),
        )


# --- bounds -----------------------------------------------------------------------------


def pages(counts: Counter[str]) -> int:
    return sum(max(1, math.ceil(counts[k] / PAGE)) for k in KINDS)


def read_bound(counts: Counter[str], latency: float, c: int) -> float:
    p = pages(counts)
    return latency * (1 + math.ceil(max(0, p - len(KINDS)) / c))


def writes_bound(groups: list[tuple[int, int]], latency: float, c: int) -> float:
    """`groups`: (writes, depth) of phases that must follow each other."""
    return sum(latency * max(depth, math.ceil(w / c)) for w, depth in groups if w)


def requests_by_method(stats: dict[str, Any]) -> Counter[str]:
    out: Counter[str] = Counter()
    for route, n in stats["requests"].items():
        if route.startswith(("GET /_emulator", "POST /_emulator")):
            continue
        out[route.split(" ", 1)[0]] += n
    return out


# --- the baseline: the official SDK, one call at a time ------------------------------


def sdk_noop_read(url: str) -> float:
    from equos.equos import EquosClient, EquosOptions

    sdk = EquosClient.create(KEY, EquosOptions(endpoint=url))
    started = time.perf_counter()
    try:
        for api, key in (
            (sdk.faces, "faces"),
            (sdk.voices, "voices"),
            (sdk.brains, "brains"),
            (sdk.knowledge_bases, "items"),
            (sdk.characters, "characters"),
        ):
            skip = 0
            while True:
                page = api.list(skip=float(skip), client_query=CLIENT)
                batch = getattr(page, key)
                skip += len(batch)
                if not batch or skip >= page.total:
                    break
    finally:
        sdk._client.get_httpx_client().close()
    return time.perf_counter() - started


def sdk_edit_brains(url: str, edited: int, text: str) -> float:
    """List the brains, then PATCH the first `edited` to `text` (what a script would do)."""
    from equos.client.models.create_equos_brain_request import CreateEquosBrainRequest
    from equos.equos import EquosClient, EquosOptions

    sdk = EquosClient.create(KEY, EquosOptions(endpoint=url))
    started = time.perf_counter()
    try:
        brains = []
        skip = 0
        while True:
            page = sdk.brains.list(skip=float(skip), client_query=CLIENT)
            brains += page.brains
            skip += len(page.brains)
            if not page.brains or skip >= page.total:
                break
        for brain in brains:
            number = re.match(r"Brain (\d+)[,.]", brain.instructions)
            if number and int(number.group(1)) < edited:
                sdk.brains.update(
                    brain.id,
                    CreateEquosBrainRequest(
                        instructions=f"Brain {number.group(1)}, {text}.",
                        greeting_message="Hi",
                        client=CLIENT,
                    ),
                )
    finally:
        sdk._client.get_httpx_client().close()
    return time.perf_counter() - started


def avatarsync_read(url: str, c: int) -> float:
    """The same read through avatarsync's client, in this process."""
    import asyncio

    from avatarsync.planning.live import fetch_live
    from avatarsync.providers.equos import EquosClient
    from avatarsync.secret import Secret

    async def read() -> None:
        async with EquosClient(url, Secret(KEY), max_concurrency=c) as client:
            await fetch_live(client, CLIENT)

    started = time.perf_counter()
    asyncio.run(read())
    return time.perf_counter() - started


def avatarsync_edit(root: Path, n: int, edited: int, text: str, c: int) -> float:
    """The same edit through avatarsync's Python API (plan, then apply), in this process."""
    from avatarsync import Workspace, load_project

    write_project(root, n, _url_of(root), edited=edited, edit_text=text)
    os.environ["BENCH_KEY"] = KEY
    started = time.perf_counter()
    with Workspace(load_project(root), "bench", parallelism=c) as ws, ws.locked():
        report = ws.apply(ws.plan().plan)
    assert report.ok, report.error
    return time.perf_counter() - started


def _url_of(root: Path) -> str:
    return re.search(r"url: (\S+)", (root / "avatarsync.yaml").read_text()).group(1)  # type: ignore[union-attr]


def baselines(emulator: Emulator, root: Path, n: int, c: int, rounds: int = 3) -> list[str]:
    """The sequential SDK script against avatarsync, interleaved, in this process."""
    edited = max(1, n // 10)
    reads: list[tuple[float, float]] = []
    edits: list[tuple[float, float]] = []
    for r in range(rounds):
        reads.append((sdk_noop_read(emulator.url), avatarsync_read(emulator.url, c)))
        # Each round moves the same brains on, first by the SDK, then by avatarsync.
        sdk = sdk_edit_brains(emulator.url, edited, f"round {r} by the SDK")
        ours = avatarsync_edit(root, n, edited, f"round {r} by avatarsync", c)
        edits.append((sdk, ours))
    sdk_read, our_read = (statistics.median(x) for x in zip(*reads, strict=True))
    sdk_edit, our_edit = (statistics.median(x) for x in zip(*edits, strict=True))
    return [
        f"no-op read: SDK script {sdk_read:.2f} s, avatarsync {our_read:.2f} s: "
        f"{sdk_read / our_read:.1f}x faster",
        f"10% brain edit: SDK script {sdk_edit:.2f} s, avatarsync plan + apply {our_edit:.2f} s: "
        f"{sdk_edit / our_edit:.1f}x faster",
    ]


# --- the scenarios ----------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    n: int
    wall: float
    bound: float
    requests: Counter[str]
    minimum: int
    cpu: float
    rss_mb: float
    peak: int
    duplicates: int
    next_plan_empty: bool | None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.wall / self.bound if self.bound else float("nan")

    @property
    def retries(self) -> int:
        return max(0, sum(self.requests.values()) - self.minimum)


def measure(
    emulator: Emulator,
    root: Path,
    scenario: str,
    n: int,
    args: list[str],
    bound: float,
    minimum: int,
) -> tuple[Row, Run]:
    emulator.reset()
    run = cli(root, *args)
    if run.code not in (0, 2):
        raise RuntimeError(f"{scenario} at N={n} failed ({run.code}):\n{run.err[-3000:]}")
    stats = emulator.stats()
    row = Row(
        scenario,
        n,
        run.wall,
        bound,
        requests_by_method(stats),
        minimum,
        run.cpu,
        run.rss_mb,
        stats["peakInFlight"],
        0,
        None,
    )
    return row, run


def settle(emulator: Emulator, root: Path, row: Row, expected: Counter[str]) -> None:
    """Duplicates and whether the next plan is empty, checked with the latency off."""
    live = emulator.count()
    row.duplicates = sum(max(0, live[k] - expected[k]) for k in KINDS)
    missing = sum(max(0, expected[k] - live[k]) for k in KINDS)
    if missing:
        row.notes.append(f"{missing} objects missing")
    saved = emulator.admin("/_emulator/faults")
    emulator.faults(latencyMs=0, rateLimit=None, errorRate=0.0)
    again = cli(root, "plan", "--env", "bench", "--detailed-exitcode")
    emulator.faults(
        latencyMs=saved["latencyMs"], rateLimit=saved["rateLimit"], errorRate=saved["errorRate"]
    )
    row.next_plan_empty = again.code == 0


def size(n: int, latency_ms: int, c: int, repeat: int, baseline: bool) -> list[Row]:
    latency = latency_ms / 1000
    rows: list[Row] = []
    emulator = Emulator(latency_ms=latency_ms)
    root = Path(tempfile.mkdtemp(prefix=f"avatarsync-scale-{n}-"))
    try:
        write_project(root, n, emulator.url)
        full = expected_counts(n)
        leaves = 3 + 10 + 3
        doc_writes = 3 * 2  # register + index per document (the upload itself is not an API call)
        # cold apply: read the empty org, create the leaves (a KB: create, register, index), then characters
        writes = leaves + doc_writes + 2 * n
        bound = read_bound(Counter(), latency, c) + writes_bound(
            [(leaves + n + doc_writes, 3), (n, 1)], latency, c
        )
        row, _ = measure(
            emulator, root, "cold apply", n,
            ["apply", "--env", "bench", "--yes", "--parallelism", str(c)],
            bound, len(KINDS) + writes + 3,  # + 3 uploads
        )  # fmt: skip
        settle(emulator, root, row, full)
        rows.append(row)

        # no-op plan
        plan_rows = []
        for _ in range(repeat):
            row, _ = measure(
                emulator, root, "no-op plan", n, ["plan", "--env", "bench"],
                read_bound(full, latency, c), pages(full),
            )  # fmt: skip
            plan_rows.append(row)
        rows.append(sorted(plan_rows, key=lambda r: r.wall)[len(plan_rows) // 2])

        # 10% of the brains edited: plan, then apply
        edited = max(1, n // 10)
        write_project(root, n, emulator.url, edited=edited)
        read = read_bound(full, latency, c)
        plan_row, _ = measure(
            emulator, root, "10% edit: plan", n, ["plan", "--env", "bench"], read, pages(full)
        )
        apply_row, _ = measure(
            emulator, root, "10% edit: apply", n,
            ["apply", "--env", "bench", "--yes", "--parallelism", str(c)],
            read + writes_bound([(edited, 1)], latency, c), pages(full) + edited,
        )  # fmt: skip
        combined = Row(
            "10% edit: plan + apply", n, plan_row.wall + apply_row.wall,
            plan_row.bound + apply_row.bound, plan_row.requests + apply_row.requests,
            plan_row.minimum + apply_row.minimum, plan_row.cpu + apply_row.cpu,
            max(plan_row.rss_mb, apply_row.rss_mb), max(plan_row.peak, apply_row.peak), 0, None,
        )  # fmt: skip
        settle(emulator, root, combined, full)
        rows.append(combined)
        if baseline:
            rows[-1].notes += baselines(emulator, root, n, c)
            write_project(root, n, emulator.url, edited=edited)
            cli(root, "apply", "--env", "bench", "--yes")  # back to the edit the next rows expect

        # 10% of the characters (and their brains) removed, apply --prune
        removed = max(1, n // 10)
        write_project(root, n, emulator.url, edited=edited, removed=removed)
        row, _ = measure(
            emulator, root, "10% prune", n,
            ["apply", "--env", "bench", "--yes", "--prune", "--parallelism", str(c)],
            read + writes_bound([(removed, 1), (removed, 1)], latency, c),
            pages(full) + 2 * removed,
        )  # fmt: skip
        settle(emulator, root, row, full - Counter({"Brain": removed, "Character": removed}))
        rows.append(row)
    finally:
        emulator.close()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def drain(emulator: Emulator, c: int) -> int:
    """Spend the rate limiter's bucket (it starts full, a minute's worth) with
    cheap reads until the emulator answers 429, so that what follows runs at
    the steady-state limit, as a long apply or a busy organisation would."""
    url = f"{emulator.url}/v3/faces?take=1&client={CLIENT}"

    def one(_: int) -> bool:
        request = urllib.request.Request(url, headers={"x-api-key": KEY})
        try:
            with urllib.request.urlopen(request, timeout=30):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                return False
            raise

    sent = 0
    with ThreadPoolExecutor(c) as pool:
        while all(pool.map(one, range(c))):
            sent += c
    return sent


def under_faults(n: int, latency_ms: int, c: int, rate_limit: int, rate_n: int) -> list[Row]:
    rows = []
    latency = latency_ms / 1000
    leaves, doc_writes = 16, 6
    writes = leaves + doc_writes + 2 * n
    minimum = len(KINDS) + writes + 3
    # Rate-limited: a cold apply of `rate_n` characters once the bucket is
    # spent, so every request waits for a token; the bound is the limit itself.
    emulator = Emulator(latency_ms=latency_ms, extra=["--rate-limit", str(rate_limit)])
    root = Path(tempfile.mkdtemp(prefix="avatarsync-rate-"))
    try:
        write_project(root, rate_n, emulator.url)
        rate_minimum = len(KINDS) + leaves + doc_writes + 2 * rate_n + 3
        api_requests = rate_minimum - 3  # uploads are not rate limited
        drained = drain(emulator, c)
        row, _ = measure(
            emulator, root, f"rate-limited ({rate_limit}/min)", rate_n,
            ["apply", "--env", "bench", "--yes", "--parallelism", str(c)],
            api_requests / (rate_limit / 60), rate_minimum,
        )  # fmt: skip
        limited = emulator.stats()["faults"]["rateLimited"]
        total = sum(row.requests.values())
        throughput = (total - limited) / row.wall * 60
        row.notes.append(
            f"bucket drained first ({drained} reads); {throughput:.0f} req/min = "
            f"{throughput / rate_limit:.0%} of the limit; {limited} answered 429 "
            f"({limited / max(total, 1):.1%})"
        )
        settle(emulator, root, row, expected_counts(rate_n))
        rows.append(row)
    finally:
        emulator.close()
        shutil.rmtree(root, ignore_errors=True)
    # 10% of requests answered 500/502/503: converge within one re-run, no duplicate.
    emulator = Emulator(latency_ms=latency_ms, extra=["--error-rate", "0.1", "--seed", "7"])
    root = Path(tempfile.mkdtemp(prefix="avatarsync-faults-"))
    try:
        write_project(root, n, emulator.url)
        bound = read_bound(Counter(), latency, c) + writes_bound(
            [(leaves + n + doc_writes, 3), (n, 1)], latency, c
        )
        emulator.reset()
        first = cli(root, "apply", "--env", "bench", "--yes", "--parallelism", str(c))
        runs = [first]
        if first.code != 0:
            runs.append(cli(root, "apply", "--env", "bench", "--yes", "--parallelism", str(c)))
        stats = emulator.stats()
        row = Row(
            "10% errors", n, sum(r.wall for r in runs), bound, requests_by_method(stats), minimum,
            sum(r.cpu for r in runs), max(r.rss_mb for r in runs), stats["peakInFlight"], 0, None,
            [f"{len(runs)} run(s); {stats['faults']['errors']} injected errors"],
        )  # fmt: skip
        settle(emulator, root, row, expected_counts(n))
        rows.append(row)
    finally:
        emulator.close()
        shutil.rmtree(root, ignore_errors=True)
    return rows


# --- output -----------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (
        "| scenario | N | wall | lower bound | ratio | requests (GET/POST/PATCH/PUT/DELETE) "
        "| minimum | retries | client CPU | peak RSS | peak in flight | duplicates | next plan empty | notes |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        methods = "/".join(str(r.requests[m]) for m in ("GET", "POST", "PATCH", "PUT", "DELETE"))
        lines.append(
            f"| {r.scenario} | {r.n:,} | {r.wall:.2f} s | {r.bound:.2f} s | {r.ratio:.2f}x | {methods} "
            f"| {r.minimum:,} | {r.retries:,} | {r.cpu:.2f} s | {r.rss_mb:.0f} MB | {r.peak} "
            f"| {r.duplicates} | {_yes_no(r.next_plan_empty)} | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    memory = ""
    try:
        kb = int(
            next(
                line
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ).split()[1]
        )
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.system()} {platform.machine()}, {cpus} cores ({model}){memory}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="no-op plan runs (median)")
    parser.add_argument("--rate-limit", type=int, default=1200, help="per minute")
    parser.add_argument(
        "--rate-n", type=int, default=300, help="characters of the rate-limited apply"
    )
    parser.add_argument("--quick", action="store_true", help="N = 100 at 5 ms: the CI check")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        return quick(args.parallelism)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[Row] = []
    started = time.perf_counter()
    for n in sizes:
        print(f"N = {n:,} …", file=sys.stderr, flush=True)
        rows += size(n, args.latency_ms, args.parallelism, args.repeat, baseline=n <= 1000)
        print(table(rows), file=sys.stderr, flush=True)
    print("under faults (N = 100) …", file=sys.stderr, flush=True)
    rows += under_faults(100, args.latency_ms, args.parallelism, args.rate_limit, args.rate_n)
    text = table(rows)
    print(text)
    args.out.write_text(
        "# Benchmark results\n\n"
        f"`python benchmarks/scale.py --sizes {args.sizes}` on {machine()}; emulator in its "
        f"own process at --latency-ms {args.latency_ms}, parallelism {args.parallelism}; "
        f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s in all.\n\n"
        + text
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)


def quick(c: int) -> None:
    """The CI variant: only request counts and the in-flight bound are checked, never a time."""
    n = 100
    rows = size(n, 5, c, 1, baseline=False)
    print(table(rows))
    problems = []
    for r in rows:
        if r.peak > c:
            problems.append(f"{r.scenario}: {r.peak} requests in flight > {c}")
        if r.retries:
            problems.append(f"{r.scenario}: {r.retries} requests beyond the minimum {r.minimum}")
        if r.duplicates or r.next_plan_empty is False:
            problems.append(
                f"{r.scenario}: duplicates {r.duplicates}, next plan empty {r.next_plan_empty}"
            )
    if problems:
        raise SystemExit("\n".join(problems))
    print("quick benchmark: request counts and in-flight bound as expected")


if __name__ == "__main__":
    main()
