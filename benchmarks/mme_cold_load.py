"""Cold-load overhead of one multi-model instance: what moorage adds beyond model_fn.

Loads N distinct copies of a tiny scikit-learn model in turn (POST /models, invoke, DELETE)
and prints the p50 of: the load call, model_fn (timed inside it), and their difference less
``downloadSeconds`` (the overhead). Compare the zygote with spawning in one run:

    python benchmarks/mme_cold_load.py 30
    python benchmarks/mme_cold_load.py 30 MOORAGE_ZYGOTE=off
"""

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.builders import save_iris_model  # noqa: E402
from tests.integration.instance import running_instance  # noqa: E402

INFERENCE = """\
import os
import time

import joblib


def model_fn(model_dir):
    start = time.perf_counter()
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    with open(os.path.join(model_dir, "model_fn_seconds"), "w") as f:
        f.write(str(time.perf_counter() - start))
    return model
"""


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    env = dict(arg.split("=", 1) for arg in sys.argv[2:])
    root = Path(tempfile.mkdtemp())
    save_iris_model(root / "model.joblib")
    folders = []
    for i in range(count):
        folder = root / f"m{i}"
        (folder / "code").mkdir(parents=True)
        shutil.copy(root / "model.joblib", folder / "model.joblib")
        (folder / "code" / "inference.py").write_text(INFERENCE)
        folders.append(folder)
    totals, model_fns, overheads = [], [], []
    with running_instance(None, root, args=("--multi-model",), env=env) as instance:
        for i, folder in enumerate(folders):
            body = json.dumps({"model_name": f"m{i}", "url": str(folder)}).encode()
            start = time.perf_counter()
            response = instance.request(
                "POST", "/models", body, {"Content-Type": "application/json"}
            )
            total = time.perf_counter() - start
            assert response.status == 200, response.data
            model_fn = float((folder / "model_fn_seconds").read_text())
            download = json.loads(response.data).get("downloadSeconds", 0.0)
            totals.append(total)
            model_fns.append(model_fn)
            overheads.append(total - model_fn - download)
            assert instance.request("DELETE", f"/models/m{i}").status == 200
    shutil.rmtree(root)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f} ms"

    print(
        f"{count} loads: load call p50 {ms(totals)}, model_fn p50 {ms(model_fns)}, "
        f"overhead p50 {ms(overheads)} (first load {overheads[0] * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
