"""The ``moorage`` command. Heavy imports happen inside the command that needs them."""

import argparse
import sys
from collections.abc import Sequence


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
    args = parser.parse_args(argv)
    if args.command == "serve-model":
        sys.exit(run_from_args(args))
