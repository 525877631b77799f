"""The ``moorage`` command. Heavy imports happen inside the command that needs them."""

import argparse
import sys
from collections.abc import Sequence


def _add_server(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    server = commands.add_parser(
        "server",
        help="run the SageMaker-compatible server (control plane and runtime on one port)",
        description="Serve SageMaker's control plane (boto3 'sagemaker') and runtime "
        "('sagemaker-runtime') on one port; point endpoint_url at it.",
    )
    server.add_argument(
        "--host",
        help="address to bind (default 127.0.0.1); beyond loopback it needs --credentials-file",
    )
    server.add_argument("--port", type=int, help="port to bind (default 8080; 0: any)")
    server.add_argument("--data-dir", help="state, logs and model cache (default ~/.moorage)")
    server.add_argument(
        "--database-url",
        help="the store: postgresql://user:password@host/db (pip install 'moorage[postgresql]') "
        "or sqlite:///path (default: moorage.db in the data dir)",
    )
    server.add_argument(
        "--credentials-file",
        help="AWS shared-credentials file: requests must be signed (SigV4) with one of its keys",
    )
    server.add_argument(
        "--demo",
        action="store_true",
        help="deploy the bundled example model as the endpoint 'demo' and print how to call it",
    )


def _add_logs(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    logs = commands.add_parser(
        "logs",
        help="show an endpoint's instance logs",
        description="Print the log streams of an endpoint's instances, oldest first.",
    )
    logs.add_argument("endpoint")
    logs.add_argument("--data-dir", help="the server's data dir (default ~/.moorage)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="moorage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_model = commands.add_parser(
        "serve-model",
        help="serve one model standalone, as a SageMaker container does",
        description="Serve one model on the SageMaker container contract (GET /ping, "
        "POST /invocations), with its logs on the terminal.",
    )
    from moorage.runtime.command import add_arguments, run_from_args

    add_arguments(serve_model)
    _add_server(commands)
    _add_logs(commands)
    args = parser.parse_args(argv)
    if args.command == "serve-model":
        sys.exit(run_from_args(args))
    if args.command == "server":
        from moorage.cli.server import run_server

        sys.exit(run_server(args))
    if args.command == "logs":
        from moorage.cli.logs import show_logs

        sys.exit(show_logs(args))
