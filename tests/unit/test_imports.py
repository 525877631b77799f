"""Architecture: the instance runtime stays light and never loads the server side."""

import json
import subprocess
import sys

SERVER_SIDE = (
    "sqlalchemy",
    "prometheus_client",
    "botocore",
    "moorage.server",
    "moorage.api",
    "moorage.control",
    "moorage.store",
    "moorage.routing",
    "moorage.fleet",
    "moorage.capture",
)


def loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(output))


def test_runtime_imports_nothing_server_side():
    modules = loaded_after("import moorage.runtime.serve, moorage.runtime.worker")
    assert not {m for m in modules if m.startswith(SERVER_SIDE)}


def test_worker_does_not_import_numpy_until_a_codec_needs_it():
    assert "numpy" not in loaded_after("import moorage.runtime.handlers")
