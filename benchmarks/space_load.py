"""Load test of the demo (``vaegan demo``): concurrent gradio_client clients against a server in a subprocess.

For each scenario, ``--clients`` clients (threads, each its own ``gradio_client.Client``) start together and each
makes ``--calls`` requests; the script reports p50 / p95 / max latency, requests per second, errors, and the
server process's CPU time per request (from /proc, so the load generator's own CPU is not counted). The target
of the Space issue is checked on both Sample scenarios (identical default requests, and a different seed per
request): p95 < 300 ms for 16 images of the 28x28 VAE with 20 concurrent warm clients. The load generator's own
CPU per request is reported too: it shares the machine with the server.

Two kinds of client (``--client``): ``gradio_client`` (the Python API client: a new HTTP connection for each
of its requests per call, plus a thread per call) and ``http``, which speaks the same protocol as the page in a
browser (join the queue, read the event stream, download a result file; a picture that comes inline in the result,
as a data URL, needs no download) over kept-alive connections, from one asyncio thread. The page's visitors run on
their own machines; ``http`` is the closer stand-in for them when the load generator has to share the server's
cores.

    python benchmarks/space_load.py [--model DIR_OR_ID] [--clients 20] [--calls 10] [--scenarios sample,...]
                                    [--json out.json]

Without ``--model`` it saves an (untrained) textbook 28x28 VAE with a 2-D latent to a temporary folder: the
speed of a forward pass does not depend on the weights. The load generator runs on the same machine, so the
machine's other load matters; the report includes the load average and the CPU count.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

P95_TARGET_MS = 300.0

SCENARIOS: dict[str, str] = {
    "sample": "/sample, 16 images, a different seed for every request",
    "sample-identical": "/sample, 16 images, seed 0 for every request (the page's defaults)",
    "interpolate": "/interpolate between seeds 0 and 1, 10 steps (identical requests)",
    "latent_map": "/latent_map of the model (identical requests)",
    "reconstruct": "/reconstruct an uploaded digit (identical requests)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, port: int, extra: list[str] | None = None, env: dict[str, str] | None = None,
                 ) -> subprocess.Popen:
    """``vaegan demo MODEL`` on 127.0.0.1:``port`` in a subprocess (held-out digits off unless ``extra`` says)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    command = [sys.executable, "-m", "vaegan.cli", "demo", f"model={model}", "--host", "127.0.0.1", "--port",
               str(port), "--heldout", "none", *(extra or [])]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            if httpx.get(url + "/config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the demo did not answer at {url} within {timeout} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def digit_png(folder: Path) -> Path:
    """A dark '7' on white, as a visitor would upload."""
    from PIL import Image, ImageDraw

    path = folder / "seven.png"
    image = Image.new("L", (120, 90), 255)
    draw = ImageDraw.Draw(image)
    draw.line((20, 15, 70, 15), fill=0, width=7)
    draw.line((70, 15, 40, 80), fill=0, width=7)
    image.save(path)
    return path


# The arguments of each scenario's request number ``index`` (unique over a run) and its endpoint; "reconstruct"
# uploads a digit first, which each client does its own way.
ARGUMENTS: dict[str, Callable[[str, int], tuple[tuple, str]]] = {
    "sample": lambda model, i: ((model, 16, 1000 + i, 1.0), "/sample"),
    "sample-identical": lambda model, i: ((model, 16, 0, 1.0), "/sample"),
    "interpolate": lambda model, i: ((model, "seeds", 0, 1, "3", "8", 0, None, None, None, None, 10, "slerp"),
                                     "/interpolate"),
    "latent_map": lambda model, i: ((model,), "/latent_map"),
}


def request_for(scenario: str, model: str, folder: Path, timeout: float = 60.0) -> Callable[[Any, int], Any]:
    """``call(client, index)`` making one request of ``scenario`` (``index`` is unique over the run); a request
    that takes longer than ``timeout`` seconds raises ``TimeoutError`` (counted as an error, not a hang)."""
    from gradio_client import handle_file

    upload = str(digit_png(folder))

    def call(client: Any, index: int) -> Any:
        if scenario == "reconstruct":
            args, api_name = (model, handle_file(upload), None), "/reconstruct"
        else:
            args, api_name = ARGUMENTS[scenario](model, index)
        return client.submit(*args, api_name=api_name).result(timeout=timeout)

    return call


def crowd(clients: list[Any], call: Callable[[Any, int], Any], calls_each: int) -> dict[str, Any]:
    """All clients start together; each makes ``calls_each`` calls. Latencies in ms, error messages, wall time."""
    start = threading.Barrier(len(clients))

    def run(index: int) -> tuple[list[float], list[str]]:
        latencies, errors = [], []
        start.wait()
        for k in range(calls_each):
            began = time.perf_counter()
            try:
                call(clients[index], index * calls_each + k)
                latencies.append(1000 * (time.perf_counter() - began))
            except Exception as err:  # counted and reported
                errors.append(f"{type(err).__name__}: {err}")
        return latencies, errors

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(run, range(len(clients))))
    wall = time.perf_counter() - began
    return {"latencies_ms": sorted(t for lat, _ in results for t in lat),
            "errors": [e for _, errs in results for e in errs], "wall_s": wall}


class Visitor:
    """One browser-like visitor: its own session and kept-alive connections; a call joins the queue, reads the
    session's event stream until the result, and downloads a result file (a picture sent inline needs none), as
    the page does."""

    def __init__(self, url: str, endpoints: dict[str, tuple[int, list[Any]]], timeout: float):
        import uuid

        import httpx

        self.endpoints = endpoints
        self.session = uuid.uuid4().hex[:11]
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout)

    async def call(self, args: tuple, api_name: str) -> Any:
        fn_index, defaults = self.endpoints[api_name]
        join = await self.http.post("/gradio_api/queue/join", json={  # the page sends every input's value
            "data": [*args, *defaults[len(args):]], "fn_index": fn_index, "session_hash": self.session,
            "event_data": None, "trigger_id": None})
        join.raise_for_status()
        event_id = join.json()["event_id"]
        output = None
        async with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as sse:
            async for line in sse.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    if not message.get("success", False):
                        raise RuntimeError(f"{api_name} failed: {message.get('output')}")
                    output = message["output"]["data"]
                    break
        if output is None:
            raise RuntimeError(f"{api_name}: the event stream closed before the result")
        for value in output:  # a picture sent inline (a data URL) is already here, as in a browser
            if isinstance(value, dict) and value.get("url") and not value["url"].startswith("data:"):
                download = await self.http.get(value["url"])
                download.raise_for_status()
        return output

    async def upload(self, path: str) -> dict[str, Any]:
        """Upload a file as the page does; returns the ``FileData`` an endpoint takes."""
        with open(path, "rb") as handle:
            answer = await self.http.post("/gradio_api/upload", files={"files": (Path(path).name, handle)})
        answer.raise_for_status()
        return {"path": answer.json()[0], "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def http_crowd(url: str, scenario: str, model: str, folder: Path, clients: int, calls_each: int,
               timeout: float = 60.0, before_start: Callable[[], Any] = lambda: None) -> dict[str, Any]:
    """``crowd`` with browser-like visitors (see :class:`Visitor`), all on one asyncio loop. Each visitor makes one
    warm-up call first; ``before_start()`` runs after the warm-up and its value is returned as ``"before"``."""
    import asyncio

    import httpx

    config = httpx.get(url + "/config", timeout=timeout).json()
    info = httpx.get(url + "/gradio_api/info", timeout=timeout).json()["named_endpoints"]
    endpoints = {f"/{d['api_name']}": (d["id"], [p.get("parameter_default") for p in
                                                 info[f"/{d['api_name']}"]["parameters"]])
                 for d in config["dependencies"] if f"/{d.get('api_name')}" in info}
    upload = str(digit_png(folder))

    async def request(visitor: Visitor, index: int) -> Any:
        async def call() -> Any:
            if scenario == "reconstruct":  # a visitor drops the picture, then the page calls the endpoint
                return await visitor.call((model, await visitor.upload(upload), None), "/reconstruct")
            return await visitor.call(*ARGUMENTS[scenario](model, index))

        return await asyncio.wait_for(call(), timeout)

    async def run_all() -> dict[str, Any]:
        visitors = [Visitor(url, endpoints, timeout) for _ in range(clients)]
        try:
            await asyncio.gather(*(request(v, -1 - i) for i, v in enumerate(visitors)))  # warm
            gate = asyncio.Event()

            async def run(index: int) -> tuple[list[float], list[str]]:
                latencies, errors = [], []
                await gate.wait()
                for k in range(calls_each):
                    began = time.perf_counter()
                    try:
                        await request(visitors[index], index * calls_each + k)
                        latencies.append(1000 * (time.perf_counter() - began))
                    except Exception as err:  # counted and reported
                        errors.append(f"{type(err).__name__}: {err}")
                return latencies, errors

            tasks = [asyncio.create_task(run(i)) for i in range(clients)]
            await asyncio.sleep(0)
            before = before_start()
            began = time.perf_counter()
            gate.set()
            results = await asyncio.gather(*tasks)
            return {"latencies_ms": sorted(t for lat, _ in results for t in lat),
                    "errors": [e for _, errs in results for e in errs], "wall_s": time.perf_counter() - began,
                    "before": before}
        finally:
            await asyncio.gather(*(v.http.aclose() for v in visitors))

    return asyncio.run(run_all())


def summary(outcome: dict[str, Any], server_cpu_s: float, client_cpu_s: float | None = None) -> dict[str, Any]:
    latencies, errors = outcome["latencies_ms"], outcome["errors"]
    requests = len(latencies) + len(errors)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": requests, "errors": len(errors), "first_errors": sorted(set(errors))[:3],
        "p50_ms": round(q[49], 1) if q else None, "p95_ms": round(q[94], 1) if q else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "throughput_rps": round(requests / outcome["wall_s"], 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu_s / max(1, requests), 2),
        **({} if client_cpu_s is None else
           {"load_generator_cpu_ms_per_request": round(1000 * client_cpu_s / max(1, requests), 2)}),
    }


def _own_cpu() -> float:
    """CPU seconds of this process (the load generator: all client threads)."""
    times = os.times()
    return times.user + times.system


def make_clients(url: str, n: int) -> list[Any]:
    from gradio_client import Client

    # gradio_client opens a new httpx client for every HTTP call; with certificate verification on, each loads the
    # CA bundle (~20 ms of CPU), which would make the load generator the bottleneck. The server is plain HTTP on
    # loopback, so no TLS is involved either way.
    return [Client(url, verbose=False, ssl_verify=False) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder or Hub id (default: a fresh 28x28 VAE, 2-D latent); with --url, "
                                        "the name of the model in the running demo")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--client", choices=["gradio_client", "http"], default="gradio_client",
                        help="gradio_client clients (threads), or browser-like HTTP visitors on one asyncio loop")
    parser.add_argument("--calls", type=int, default=10, help="requests per client per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {list(SCENARIOS)}")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `vaegan demo` argument")
    parser.add_argument("--url", help="measure a demo that is already running here (with --server-pid for its CPU)")
    parser.add_argument("--server-pid", type=int, help="process id of the server at --url")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request counts as failed")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")

    with tempfile.TemporaryDirectory(prefix="vaegan-load-") as tmp:
        folder = Path(tmp)
        model = args.model
        if model is None:
            import torch

            import vaegan

            torch.manual_seed(0)
            vaegan.VAE().save_pretrained(folder / "mnist-vae")
            model = str(folder / "mnist-vae")
        server, url, pid = None, args.url, args.server_pid
        if url is None:
            port = free_port()
            server = start_server(model, port, args.server_arg)
            url, pid = f"http://127.0.0.1:{port}", server.pid
        report: dict[str, Any] = {
            "server": f"vaegan demo (subprocess, defaults{' ' + ' '.join(args.server_arg) if args.server_arg else ''})",
            "model": args.model or "fresh textbook VAE, 28x28x1, 2-D latent", "clients": args.clients,
            "client": args.client,
            "calls_per_client": args.calls, "cpu_count": os.cpu_count(), "scenarios": {},
        }
        try:
            if server is not None:
                wait_until_up(url, server)
            clients = make_clients(url, args.clients) if args.client == "gradio_client" else []
            name = "model" if args.url is None else args.model
            for scenario in scenarios:
                def snapshot() -> tuple[float, float, float]:
                    return os.getloadavg()[0], (cpu_seconds(pid) if pid else 0.0), _own_cpu()

                if args.client == "http":
                    outcome = http_crowd(url, scenario, name, folder, args.clients, args.calls, args.timeout,
                                         before_start=snapshot)
                    load_before, cpu_before, own_before = outcome["before"]
                else:
                    call = request_for(scenario, name, folder, args.timeout)
                    for index, client in enumerate(clients):  # warm: connections, first-call caches
                        call(client, -1 - index)
                    load_before, cpu_before, own_before = snapshot()
                    outcome = crowd(clients, call, args.calls)
                result = summary(outcome, cpu_seconds(pid) - cpu_before if pid else float("nan"),
                                 _own_cpu() - own_before)
                result.update(description=SCENARIOS[scenario], load_average_before=round(load_before, 2),
                              load_average_after=round(os.getloadavg()[0], 2))
                report["scenarios"][scenario] = result
                print(f"{scenario:17s} {result['requests']:4d} requests  {result['errors']} errors  "
                      f"p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms  max {result['max_ms']} ms  "
                      f"{result['throughput_rps']} req/s  CPU per request: server "
                      f"{result['server_cpu_ms_per_request']} ms, load generator "
                      f"{result['load_generator_cpu_ms_per_request']} ms  (load average {load_before:.1f})", flush=True)
        finally:
            if server is not None:
                stop_server(server)
    report["targets"] = {}
    for name in ("sample-identical", "sample"):
        result = report["scenarios"].get(name)
        if result:
            met = result["errors"] == 0 and result["p95_ms"] is not None and result["p95_ms"] < P95_TARGET_MS
            report["targets"][name] = {"p95_ms_below": P95_TARGET_MS, "met": met}
            print(f"target: {name} p95 < {P95_TARGET_MS:.0f} ms with {args.clients} {args.client} clients and "
                  f"0 errors: {'met' if met else 'NOT met'} (p95 {result['p95_ms']} ms, {result['errors']} errors)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(s["errors"] == 0 for s in report["scenarios"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
