"""Command line of one instance: ``moorage serve-model`` and ``python -m moorage.runtime``."""

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources

from moorage.errors import ValidationError
from moorage.runtime.config import load_config
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
        "--worker-sockets",
        metavar="PREFIX",
        help="also let each worker listen on a Unix socket named PREFIX.w<N> (PREFIX.m<hash>.w<N> "
        "per model), where the moorage server sends invocations without the front's hop",
    )


def example_model() -> str:
    return str(resources.files("moorage") / "examples" / "linear")


def run_from_args(args: argparse.Namespace) -> int:
    path = args.path
    if path is None and not args.multi_model and not os.environ.get("SAGEMAKER_BASE_DIR"):
        path = example_model()
    try:
        config = load_config(
            model_url=path,
            host=args.host,
            port=args.port,
            unix_socket=args.unix_socket,
            workers=args.workers,
            multi_model=args.multi_model,
            cache_dir=args.cache_dir,
            worker_sockets=args.worker_sockets,
        )
    except ValidationError as exc:
        print(f"moorage: {exc}", file=sys.stderr)
        return 2
    run(config)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="moorage serve-model",
        description="Serve one model on the SageMaker container contract (GET /ping, "
        "POST /invocations).",
    )
    add_arguments(parser)
    sys.exit(run_from_args(parser.parse_args(argv)))
