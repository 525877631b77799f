"""Multi-model endpoints through ``moorage server``: warm hits, cold loads, memory while cycling.

One run starts a server, registers ``--models`` tarballs (1,000 by default) under one prefix,
and reports as a markdown table:

1. warm-hit latency (p50/p99, sequential) and req/s at 8 connections (wrk, when installed)
   through the multi-model endpoint, hitting one loaded model, next to a single-model endpoint
   of the same model;
2. cold-load overhead: first-call latency of a not-yet-loaded model minus what the instance
   spent downloading and loading it (its reported ``downloadSeconds``/``loadSeconds``, read from
   ``/metrics``), minus the warm latency; without those figures, first call minus warm;
3. memory (RSS and PSS of the server and all its descendants), sampled while cycling through
   the models with at most ``--budget`` loaded per instance.

Run from the checkout: ``python benchmarks/multi_model.py`` (about 3 minutes on 2 cores).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.builders import model_dir, pack  # noqa: E402

SERVER_CPU, LOAD_CPU = 0, 1
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
BODY = b'{"x": [1, 2, 3, 4]}'
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def build_prefix(root: Path, count: int) -> Path:
    """``count`` distinct identity-model tarballs: model-0000.tar.gz, …"""
    source = model_dir("identity", root / "source")
    prefix = root / "prefix"
    prefix.mkdir()
    for number in range(count):
        (source / "name.txt").write_text(str(number))
        pack(source, prefix / f"model-{number:04d}.tar.gz")
    return prefix


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [
                *pinned(SERVER_CPU),
                sys.executable,
                "-m",
                "moorage",
                "server",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "listening on" in line:
                self.url = line.rsplit(" ", 1)[-1].strip()
                break
        else:
            raise RuntimeError("the server did not start")
        self.port = int(self.url.rsplit(":", 1)[-1])
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        kw = dict(endpoint_url=self.url, region_name="us-east-1", **CREDENTIALS)
        self.sm = boto3.client("sagemaker", **kw)

    def deploy(self, name: str, container: dict) -> None:
        container = {"Image": IMAGE, **container}
        self.sm.create_model(ModelName=name, PrimaryContainer=container)
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        }
        self.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        self.sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
        )

    def metric(self, name: str, endpoint: str) -> float:
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        pattern = re.compile(rf'^{name}\{{[^}}]*EndpointName="{endpoint}"[^}}]*\}} (\S+)$', re.M)
        return sum(float(v) for v in pattern.findall(text))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class Client:
    """A keep-alive HTTP client of the runtime API (no signing: the server is on loopback)."""

    def __init__(self, port: int, endpoint: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port)
        self.path = f"/endpoints/{endpoint}/invocations"

    def invoke(self, target: str | None = None) -> float:
        headers = {"Content-Type": "application/json"}
        if target is not None:
            headers["X-Amzn-SageMaker-Target-Model"] = target
        started = time.perf_counter()
        self.connection.request("POST", self.path, BODY, headers)
        answer = self.connection.getresponse()
        body = answer.read()
        took = time.perf_counter() - started
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {body[:300]!r}")
        return took


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def warm(port: int, endpoint: str, target: str | None, requests: int) -> list[float]:
    client = Client(port, endpoint)
    for _ in range(200):
        client.invoke(target)
    return [client.invoke(target) for _ in range(requests)]


def wrk_run(port: int, endpoint: str, target: str | None, seconds: int, server_pid: int):
    """req/s at c=8 and the server's CPU µs per request (it and its descendants), or None."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if target is not None:
        headers += f'wrk.headers["X-Amzn-SageMaker-Target-Model"] = "{target}"\n'
    script = f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY.decode())}\n{headers}'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        before = cpu_ticks(server_pid)
        output = subprocess.run(
            [*pinned(LOAD_CPU), wrk, "-t1", "-c8", f"-d{seconds}s", "-s", file.name,
             f"http://127.0.0.1:{port}/endpoints/{endpoint}/invocations"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        used = cpu_ticks(server_pid) - before
    finally:
        os.unlink(file.name)
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if rate is None or count is None:
        return None
    return float(rate.group(1)), used / os.sysconf("SC_CLK_TCK") / int(count.group(1)) * 1e6


def pinned(cpu: int) -> list[str]:
    """``taskset -c CPU`` where it helps: the server on one CPU, wrk on the other, as the
    shared harness does, so that both endpoints get the same CPU budget."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def cpu_ticks(pid: int) -> int:
    total = 0
    for process in descendants(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS (shared pages divided among their users) of ``pid`` and its descendants."""
    rss = pss = 0
    for process in descendants(pid):
        try:
            text = Path(f"/proc/{process}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="tarballs under the prefix")
    parser.add_argument("--budget", type=int, default=20, help="models loaded per instance")
    parser.add_argument("--cycle", type=int, default=1000, help="loads while sampling memory")
    parser.add_argument("--cold", type=int, default=30, help="cold loads measured one by one")
    parser.add_argument("--requests", type=int, default=3000, help="warm requests per endpoint")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per endpoint")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per endpoint")
    parser.add_argument("--concurrency", type=int, default=4, help="clients while cycling")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="moorage-mme-bench-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    prefix = build_prefix(work, args.models)
    server = Server(work / "data")
    rows: list[tuple[str, str]] = []
    try:
        environment = {
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "MOORAGE_MAX_LOADED_MODELS": str(args.budget),
        }
        server.deploy(
            "multi",
            {"ModelDataUrl": f"file://{prefix}/", "Mode": "MultiModel", "Environment": environment},
        )
        server.deploy(
            "single",
            {
                "ModelDataUrl": f"file://{prefix}/model-0000.tar.gz",
                "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
            },
        )
        # 1. warm hits
        single = warm(server.port, "single", None, args.requests)
        multi = warm(server.port, "multi", "model-0000.tar.gz", args.requests)
        for label, values in (("single-model", single), ("multi-model, loaded", multi)):
            rows.append(
                (
                    f"warm latency p50 / p99, {label}",
                    f"{percentile(values, 0.5) * 1e3:.3f} / "
                    f"{percentile(values, 0.99) * 1e3:.3f} ms",
                )
            )
        # Rounds alternate between the endpoints, so a noisy minute hurts both alike.
        runs: dict[str, list[tuple[float, float]]] = {"single-model": [], "multi-model, loaded": []}
        for _ in range(args.rounds):
            for label, endpoint, target in (
                ("single-model", "single", None),
                ("multi-model, loaded", "multi", "model-0000.tar.gz"),
            ):
                result = wrk_run(server.port, endpoint, target, args.seconds, server.process.pid)
                if result is not None:
                    runs[label].append(result)
        for label, results in runs.items():
            if results:
                rate = statistics.median(r[0] for r in results)
                cpu = statistics.median(r[1] for r in results)
                rows.append(
                    (
                        f"req/s at c=8 (wrk) / server CPU per request, {label}",
                        f"{rate:,.0f} / {cpu:.0f} µs (median of {len(results)})",
                    )
                )
        warm_p50 = percentile(multi, 0.5)

        # 2. cold loads, one at a time, each paired with the instance's own figures
        client = Client(server.port, "multi")
        overheads, firsts, reported = [], [], True
        for number in range(1, args.cold + 1):
            before_load = server.metric("ModelLoadingTime_microseconds_sum", "multi")
            before_download = server.metric("ModelDownloadingTime_microseconds_sum", "multi")
            downloads = server.metric("ModelDownloadingTime_microseconds_count", "multi")
            first = client.invoke(f"model-{number:04d}.tar.gz")
            load_s = (
                server.metric("ModelLoadingTime_microseconds_sum", "multi") - before_load
            ) / 1e6
            reported_now = (
                server.metric("ModelDownloadingTime_microseconds_count", "multi") > downloads
            )
            download_s = (
                server.metric("ModelDownloadingTime_microseconds_sum", "multi") - before_download
            ) / 1e6
            reported = reported and reported_now
            firsts.append(first)
            spent = load_s + download_s if reported_now else 0.0
            overheads.append(first - spent - warm_p50)
        rows.append(("cold first call p50", f"{statistics.median(firsts) * 1e3:.1f} ms"))
        how = (
            "first call - downloadSeconds - loadSeconds - warm"
            if reported
            else "first call - warm (the instance reports no load timings)"
        )
        rows.append(
            (f"cold-load overhead p50 ({how})", f"{statistics.median(overheads) * 1e3:.1f} ms")
        )

        # 3. memory while cycling through every model with a budget of --budget loaded
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(memory_mb(server.process.pid))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        targets = [f"model-{n % args.models:04d}.tar.gz" for n in range(args.cycle)]
        started = time.perf_counter()

        def cycle(worker: int) -> None:
            own = Client(server.port, "multi")
            for target in targets[worker :: args.concurrency]:
                own.invoke(target)

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(cycle, range(args.concurrency)))
        took = time.perf_counter() - started
        stop.set()
        sampler.join()
        loaded = server.metric("LoadedModelCount", "multi")
        unloads = server.metric("ModelUnloadingTime_microseconds_count", "multi")
        first_half = samples[: len(samples) // 2] or samples
        second_half = samples[len(samples) // 2 :] or samples
        rows.append(
            (
                f"cycling {args.cycle} calls over {args.models} models, c={args.concurrency}",
                f"{args.cycle / took:.1f} calls/s; {unloads:.0f} unloads; "
                f"{loaded:.0f} loaded at end",
            )
        )
        rows.append(
            (
                "memory RSS, 1st half max / 2nd half max / overall max",
                f"{max(s[0] for s in first_half):.0f} / {max(s[0] for s in second_half):.0f} / "
                f"{max(s[0] for s in samples):.0f} MiB ({len(samples)} samples)",
            )
        )
        rows.append(
            (
                "memory PSS, 1st half max / 2nd half max / overall max",
                f"{max(s[1] for s in first_half):.0f} / {max(s[1] for s in second_half):.0f} / "
                f"{max(s[1] for s in samples):.0f} MiB",
            )
        )
    finally:
        server.stop()
    print(f"\nmoorage multi-model endpoint, {args.models} models, budget {args.budget}\n")
    print("| measure | value |\n| --- | --- |")
    for measure, value in rows:
        print(f"| {measure} | {value} |")


if __name__ == "__main__":
    main()
