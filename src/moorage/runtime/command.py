"""Command line of one instance: ``moorage serve-model`` and ``python -m moorage.runtime``."""

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from moorage.artifacts import local_path
from moorage.errors import ValidationError
from moorage.runtime.config import RuntimeConfig, load_config
from moorage.runtime.serve import run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        help="model folder, model.tar.gz, file:// or s3:// URL "
        "(default: $SAGEMAKER_BASE_DIR/model when set, else the bundled example model)",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port to bind (default $SAGEMAKER_BIND_TO_PORT or 8080; 0: any)"
    )
    parser.add_argument("--unix-socket", help="listen on this Unix socket instead of TCP")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default $SAGEMAKER_MODEL_SERVER_WORKERS)"
    )
    parser.add_argument(
        "--multi-model",
        action="store_true",
        default=None,
        help="serve the multi-model /models API (as SAGEMAKER_MULTI_MODEL=true)",
    )
    parser.add_argument(
        "--cache-dir", help="where archives are unpacked (default ~/.cache/moorage)"
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when a file of the model (a local folder or archive) changes: edit "
        "inference.py, save, call again (needs pip install 'moorage[reload]')",
    )
    parser.add_argument(
        "--worker-sockets",
        metavar="PREFIX",
        help="also let each worker listen on a Unix socket named PREFIX.w<N> (PREFIX.m<hash>.w<N> "
        "per model), where the moorage server sends invocations without the front's hop",
    )


def example_model() -> str:
    return str(resources.files("moorage") / "examples" / "linear")


def run_from_args(args: argparse.Namespace) -> int:
    if args.path is None and not args.multi_model and not os.environ.get("SAGEMAKER_BASE_DIR"):
        args.path = example_model()
    try:
        config = _config(args)
    except ValidationError as exc:
        print(f"moorage: {exc}", file=sys.stderr)
        return 2
    if args.reload:
        return _run_reloading(args, config)
    run(config)
    return 0


def _config(args: argparse.Namespace) -> RuntimeConfig:
    return load_config(
        model_url=args.path,
        host=args.host,
        port=args.port,
        unix_socket=args.unix_socket,
        workers=args.workers,
        multi_model=args.multi_model,
        cache_dir=args.cache_dir,
        worker_sockets=args.worker_sockets,
    )


def _run_reloading(args: argparse.Namespace, config: RuntimeConfig) -> int:
    """Serve in a child process, and start a new one whenever the model's files change."""
    try:
        import watchfiles
    except ImportError:
        print("moorage: --reload needs watchfiles: pip install 'moorage[reload]'", file=sys.stderr)
        return 2
    watched = local_path(config.model_url) if config.model_url else None
    if watched is None or not watched.exists():
        print(
            f"moorage: --reload watches a local model folder or archive, not {config.model_url}",
            file=sys.stderr,
        )
        return 2
    if config.unix_socket is None and config.port == 0:
        print("moorage: --reload needs a fixed --port: each restart binds again", file=sys.stderr)
        return 2
    # Each start reads the model's files, and its configuration, afresh.
    watchfiles.run_process(watched, target=_serve_args, args=(args,), callback=_say_reloading)
    return 0


def _serve_args(args: argparse.Namespace) -> None:
    try:
        config = _config(args)
    except ValidationError as exc:
        print(f"moorage: {exc}; waiting for a change", file=sys.stderr)
        return
    run(config)


def _say_reloading(changes: set[tuple[Any, str]]) -> None:
    names = ", ".join(sorted({Path(path).name for _, path in changes}))
    print(f"moorage: {names} changed; restarting", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="moorage serve-model",
        description="Serve one model on the SageMaker container contract (GET /ping, "
        "POST /invocations).",
    )
    add_arguments(parser)
    sys.exit(run_from_args(parser.parse_args(argv)))
