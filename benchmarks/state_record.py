"""What one `record` (the write after every API call) costs on each state backend,
at N resources already in state: it must not grow with N.

    python benchmarks/state_record.py --sizes 100,10000 --ops 500

Starts its own PostgreSQL (the machine's binaries, as the tests do) and moto's
S3 server; prints, per backend and size, the mean and p95 of one record, the
end-of-apply compaction and a full load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.servers import MotoServer, PostgresServer, find_postgres_bin

from avatarsync.resources import Address
from avatarsync.secret import Secret
from avatarsync.state import FileStateStore, ResourceState, State, StateOp, StateStore


def _state(n: int) -> State:
    state = State(environment="bench", client="acme")
    for i in range(n):
        state.resources[Address("Character", f"c{i:05d}")] = ResourceState(
            f"char_{i:024x}", "sha256:" + "ab" * 32, "2026-12-02T10:00:00.000Z", source="c.yaml"
        )
    return state


def _measure(name: str, store: StateStore, n: int, ops: int) -> None:
    store.save(_state(n))
    state = store.load()
    costs = []
    with store.locked():
        for i in range(ops):
            op = StateOp(
                "put",
                Address("Character", f"c{i % max(n, 1):05d}"),
                entry=ResourceState(f"char_{i:024x}", "sha256:" + "cd" * 32, "t"),
            )
            started = time.perf_counter()
            store.record(state, op)
            costs.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.compact(state)
        compact = time.perf_counter() - started
    started = time.perf_counter()
    store.load()
    load = time.perf_counter() - started
    store.close()
    costs.sort()
    print(
        f"| {name} | {n:,} | {statistics.mean(costs) * 1e3:.3f} ms | "
        f"{costs[int(len(costs) * 0.95)] * 1e3:.3f} ms | {compact * 1e3:.1f} ms | "
        f"{load * 1e3:.1f} ms |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--ops", type=int, default=500)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    binaries = find_postgres_bin()
    if binaries is None:
        sys.exit("PostgreSQL binaries not found (apt-get install postgresql)")
    pg = PostgresServer(binaries).start()
    moto = MotoServer().start()
    try:
        print("| backend | resources | record mean | record p95 | compact | load |")
        print("|---|---|---|---|---|---|")
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                _measure(
                    "file",
                    FileStateStore(Path(tmp) / "bench.json", environment="bench", client="acme"),
                    n,
                    args.ops,
                )
            url = pg.url(pg.create_database())
            from avatarsync.state.postgres import PostgresStateStore

            _measure(
                "postgres",
                PostgresStateStore(
                    Secret(url),
                    url_env="PGURL",
                    project="bench",
                    environment="bench",
                    client="acme",
                ),
                n,
                args.ops,
            )
            import os

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            from avatarsync.state.s3 import S3StateStore

            _measure(
                "s3 (moto)",
                S3StateStore(
                    bucket=moto.create_bucket(),
                    key="state/bench.json",
                    region="us-east-1",
                    endpoint_url=moto.url,
                    environment="bench",
                    client="acme",
                ),
                n,
                args.ops,
            )
    finally:
        moto.stop()
        pg.stop()


if __name__ == "__main__":
    main()
