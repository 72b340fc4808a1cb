"""How many requests per second the emulator serves, so it is never the bottleneck
of an end-to-end test or an apply against `--env local`.

Starts the emulator in its own process (in-memory DB, no faults), seeds a few
brains, then drives it with several load-generator processes, each keeping
several keep-alive connections busy through raw sockets and pre-built
requests: parsing a response costs the generator far less than producing it
costs the server, so the figure measures the server.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 3] [--workers 2] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

__all__ = ["main"]

KEY = "local-emulator-key"
_SERVER = (
    "import sys\n"
    "from avatarsync.emulator import EmulatorConfig, EmulatorServer\n"
    "EmulatorServer(EmulatorConfig(port=0)).serve_forever("
    "on_ready=lambda url: print(url, flush=True))\n"
)


def _request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {KEY}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()


def _worker(
    host: str,
    port: int,
    path: str,
    connections: int,
    start_at: float,
    stop_at: float,
    out: mp.Queue,
) -> None:
    """Keep one request in flight per connection; count complete 200 answers."""
    request = _request(host, port, path)
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
    while time.time() < start_at:
        time.sleep(0.001)
    for sock in buffers:
        sock.sendall(request)
    done = failed = 0
    while True:
        now = time.time()
        if now >= stop_at:
            break
        for key, _ in selector.select(timeout=0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            sock = ready
            buf = buffers[sock]
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed a keep-alive connection")
            buf += chunk
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = bytes(buf[:head_end]).lower()
                length_at = head.find(b"content-length:")
                length = (
                    int(head[length_at + 15 : head.find(b"\r\n", length_at)])
                    if length_at >= 0
                    else 0
                )
                total = head_end + 4 + length
                if len(buf) < total:
                    break
                if head.startswith(b"http/1.1 200"):
                    done += 1
                else:
                    failed += 1
                del buf[:total]
                sock.sendall(request)
    for sock in buffers:
        sock.close()
    out.put((done, failed))


def measure(url: str, path: str, *, seconds: float, workers: int, connections: int) -> float:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    queue: mp.Queue = mp.Queue()
    start_at = time.time() + 0.5  # every worker connected before the clock starts
    stop_at = start_at + seconds
    procs = [
        mp.Process(target=_worker, args=(host, port, path, connections, start_at, stop_at, queue))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    if failed:
        raise RuntimeError(f"{failed} non-200 answers on {path}")
    return done / seconds


def _admin(url: str, method: str, path: str) -> dict:
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--connections", type=int, default=8, help="keep-alive connections per worker"
    )
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("emulator did not start")
        for n in range(20):
            body = json.dumps({"instructions": f"i{n}", "greetingMessage": "g"}).encode()
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{url}/v3/brains",
                    data=body,
                    headers={"x-api-key": KEY, "content-type": "application/json"},
                )
            ).read()
        print(
            f"emulator {url}; {args.workers} load processes x {args.connections} keep-alive "
            f"connections, {args.seconds:.0f}s per endpoint"
        )
        for path in ("/v3/health", "/v3/brains?take=20"):
            _admin(url, "POST", "/_emulator/stats/reset")
            rate = measure(
                url, path, seconds=args.seconds, workers=args.workers, connections=args.connections
            )
            # The server's own count, as a cross-check of the generators' figure.
            served = _admin(url, "GET", "/_emulator/stats")["totalRequests"]
            print(f"  GET {path:<22} {rate:8.0f} requests/s  (server counted {served})")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
