"""``moorage server``."""

import argparse
import sys

from moorage.config import load_server_config
from moorage.errors import ValidationError


def run_server(args: argparse.Namespace) -> int:
    from moorage import server

    try:
        config = load_server_config(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            credentials_file=args.credentials_file,
        )
        server.signature_check(config)
    except ValidationError as exc:
        print(f"moorage: {exc}", file=sys.stderr)
        return 2
    server.run(config, demo=args.demo)
    return 0
