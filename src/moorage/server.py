"""The composition root of ``moorage server``: build every part from ServerConfig, run, stop."""

import asyncio
import gc
import ipaddress
import logging
import shutil
import signal
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from moorage.api import validation
from moorage.api.app import ServerApp
from moorage.api.async_runtime import AsyncRuntimeApi
from moorage.api.console import Console, refusal
from moorage.api.control_plane import ControlPlane
from moorage.api.hosts import HostCheck
from moorage.api.runtime import RuntimeApi
from moorage.api.sigv4 import SignatureCheck, load_keys
from moorage.artifacts import DiskBudget, ModelCache
from moorage.capture import CaptureWriter
from moorage.config import ConsoleSetting, ServerConfig
from moorage.contract.arena import Arena, keep_trimmed, private_folder
from moorage.control.reconciler import Reconciler
from moorage.control.service import ControlService
from moorage.control.transform_fleet import TransformFleets
from moorage.errors import NotFound, ValidationError
from moorage.fleet import LocalProcessFleet
from moorage.http import HttpServer, Limits, malloc
from moorage.jobs import AsyncInference, TransformRunner
from moorage.metrics import EndpointMetrics
from moorage.routing import ModelLoader, RoutingTable, TargetChecker
from moorage.store import open_store

log = logging.getLogger("moorage.server")


def signature_check(config: ServerConfig) -> SignatureCheck | None:
    """The check requests must pass, from the configured keys (DESIGN.md §8).

    With no keys, requests are not authenticated, which is only safe on loopback: the server
    refuses to bind anywhere else.
    """
    if config.credentials_file is not None:
        return SignatureCheck(load_keys(config.credentials_file), config.region)
    try:
        is_loopback = ipaddress.ip_address(config.host).is_loopback
    except ValueError:
        is_loopback = config.host == "localhost"
    if not is_loopback:
        raise ValidationError(
            f"--host {config.host} would accept unauthenticated requests from other machines; "
            "give --credentials-file (an AWS shared-credentials file) so requests must be "
            "signed with one of its keys, or bind to loopback (e.g. --host 127.0.0.1)."
        )
    return None


def disk_budget(config: ServerConfig) -> DiskBudget:
    """The models cache's budget; the instances read the same variables for the same cache."""
    default = DiskBudget()
    return DiskBudget(
        max_bytes=(config.model_cache_mb or 0) * 2**20,
        min_free_bytes=default.min_free_bytes
        if config.model_cache_min_free_mb is None
        else config.model_cache_min_free_mb * 2**20,
    )


async def serve(config: ServerConfig, *, demo: bool = False) -> None:
    signatures = signature_check(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await asyncio.to_thread(open_store, config.store_url)
    metrics = EndpointMetrics()
    # Large bodies are read into shared memory the workers read them from (contract.arena).
    bodies_dir = private_folder("moorage-server-")
    arena = Arena(bodies_dir / "bodies", config.max_payload)
    table = RoutingTable(arena)
    runtime_dir = Path(tempfile.mkdtemp(prefix="moorage-"))
    fleet = LocalProcessFleet(
        logs_dir=config.logs_dir,
        runtime_dir=runtime_dir,
        cache_dir=config.cache_dir,
        stop_grace_s=config.stop_grace_s,
    )
    captures = CaptureWriter(config.capture_flush_s)
    reconciler = Reconciler(store, fleet, table, metrics, config, captures)
    transforms = TransformRunner(
        store.transform_jobs,
        TransformFleets(fleet, config),
        config.transform_dir,
        lease_s=config.transform_lease_s,
    )
    loop = asyncio.get_running_loop()
    service = ControlService(
        store,
        config,
        wake=lambda: loop.call_soon_threadsafe(reconciler.wake),
        fleets=reconciler,
        wake_jobs=lambda: loop.call_soon_threadsafe(transforms.wake),
    )
    control_plane = ControlPlane(service)
    # Start-up work allocates and frees a lot (botocore's model above all); hand that memory
    # back before raising malloc's thresholds keeps it for the bodies of the hot path.
    await asyncio.to_thread(validation.load, control_plane.operations)
    gc.collect()
    malloc.trim()
    malloc.tune()
    queue = AsyncInference(
        store.async_invocations, table, region=config.region, lease_s=config.async_lease_s
    )
    metrics.read_backlogs(queue.backlogs)
    console_refused = refusal(config.console, signatures is not None)
    app = ServerApp(
        control_plane,
        RuntimeApi(
            table,
            ModelLoader(
                TargetChecker(),
                load_timeout_s=config.model_load_timeout_s,
                fetch=ModelCache(config.cache_dir / "models", disk_budget(config)).acquire,
            ),
            region=config.region,
            account=config.account,
            timeout_s=config.invocation_timeout_s,
            load_wait_s=config.model_load_wait_s,
        ),
        AsyncRuntimeApi(table, queue, account=config.account),
        metrics,
        signatures,
        Console(control_plane, service, metrics, config.logs_dir, refused=console_refused),
        # Unsigned, the server answers only requests addressed to it by IP or localhost.
        HostCheck(config.allowed_hosts) if signatures is None else None,
    )
    http = HttpServer(
        app.handle,
        Limits(max_body=config.max_payload, read_timeout=config.invocation_timeout_s),
        app.http_error,
        sink=arena.lend,
    )
    host, port = await http.listen_tcp(config.host, config.port)
    if demo:
        # Before the address is announced, so a client that sees it also finds the endpoint.
        await asyncio.to_thread(deploy_demo, service)
    reconciling = asyncio.create_task(reconciler.run())
    trimming = asyncio.create_task(keep_trimmed(arena))
    queueing = asyncio.create_task(queue.run())
    transforming = asyncio.create_task(transforms.run())
    print(f"moorage server listening on http://{host}:{port}", flush=True)
    if signatures is not None:
        print(
            f"Requests must be signed with a key from {config.credentials_file}: boto3 with that "
            f"aws_access_key_id and aws_secret_access_key and region {config.region}, or curl "
            f"--aws-sigv4 'aws:amz:{config.region}:sagemaker' --user KEY_ID:SECRET",
            flush=True,
        )
    print(_console_note(f"http://{host}:{port}/console", config, console_refused), flush=True)
    if demo:
        print(_DEMO_HELP.format(url=f"http://{host}:{port}"), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await http.close(grace=5.0)
    for task in (reconciling, trimming, queueing, transforming):
        task.cancel()
    await asyncio.gather(reconciling, trimming, queueing, transforming, return_exceptions=True)
    await queue.stop()
    await transforms.stop()
    await reconciler.stop()
    await asyncio.to_thread(captures.close)
    await asyncio.to_thread(store.close)
    shutil.rmtree(runtime_dir, ignore_errors=True)
    shutil.rmtree(bodies_dir, ignore_errors=True)


def _console_note(url: str, config: ServerConfig, refused: str | None) -> str:
    if refused is not None:
        if config.console is ConsoleSetting.OFF:
            return "The console is off (MOORAGE_CONSOLE=off)."
        return "The console is off: a browser cannot sign requests (MOORAGE_CONSOLE=on opens it)."
    if config.credentials_file is not None:
        return (
            f"Console: {url} (MOORAGE_CONSOLE=on: anyone who can reach this port sees endpoints, "
            "jobs, metrics and instance logs without a key)"
        )
    return f"Console: {url}"


_DEMO = "demo"
_DEMO_HELP = """
The bundled example model is deploying as the endpoint "demo". From Python:

    import boto3
    runtime = boto3.client("sagemaker-runtime", endpoint_url="{url}", region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
    print(runtime.invoke_endpoint(EndpointName="demo", ContentType="application/json",
                                  Body=b"[[1, 2, 3, 4]]")["Body"].read())

or: curl -H 'Content-Type: application/json' -d '[[1, 2, 3, 4]]' {url}/endpoints/demo/invocations
"""


def deploy_demo(service: ControlService) -> None:
    """Create the demo model, config and endpoint, keeping any left from an earlier run."""
    model = str(resources.files("moorage") / "examples" / "linear")
    steps: list[tuple[Callable[[], object], Callable[[], object]]] = [
        (
            lambda: service.create_model(
                {"ModelName": _DEMO, "PrimaryContainer": {"ModelDataUrl": model}}, []
            ),
            lambda: service.model(_DEMO),
        ),
        (
            lambda: service.create_endpoint_config(
                {
                    "EndpointConfigName": _DEMO,
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "ModelName": _DEMO,
                            "InstanceType": "ml.m5.large",
                            "InitialInstanceCount": 1,
                        }
                    ],
                },
                [],
            ),
            lambda: service.endpoint_config(_DEMO),
        ),
        (
            lambda: service.create_endpoint(
                {"EndpointName": _DEMO, "EndpointConfigName": _DEMO}, []
            ),
            lambda: service.endpoint(_DEMO),
        ),
    ]
    for create, existing in steps:
        try:
            existing()
        except NotFound:
            create()


def run(config: ServerConfig, *, demo: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [server] %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # uvloop is optional off Linux/macOS
        asyncio.run(serve(config, demo=demo))
    else:
        uvloop.run(serve(config, demo=demo))
