"""``moorage logs ENDPOINT [--follow]``: an endpoint's instance log streams."""

import argparse
import sys
import time
from pathlib import Path

from moorage.config import load_server_config
from moorage.fleet import log_streams

_POLL_S = 0.5


def show_logs(args: argparse.Namespace) -> int:
    config = load_server_config(data_dir=args.data_dir)
    root = config.logs_dir / args.endpoint
    if not root.is_dir():
        print(f"moorage: no logs for endpoint {args.endpoint!r} in {root}", file=sys.stderr)
        return 1
    offsets: dict[Path, int] = {}
    try:
        while True:
            for stream in log_streams(config.logs_dir, args.endpoint):
                variant, instance = stream.parent.name, stream.stem
                with stream.open("rb") as f:
                    f.seek(offsets.get(stream, 0))
                    data = f.read()
                    offsets[stream] = f.tell()
                for line in data.decode("utf-8", "replace").splitlines():
                    print(f"[{variant}/{instance}] {line}", flush=True)
            if not args.follow:
                return 0
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        return 0
