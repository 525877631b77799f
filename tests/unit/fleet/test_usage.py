"""Instance usage read from /proc (fleet.usage): a real process group, busy and idle."""

import os
import signal
import subprocess
import sys
import time

import pytest

from moorage.fleet.usage import UsageMeter

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc")


def start_group(program: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", program], start_new_session=True)


def test_a_busy_group_uses_cpu_and_an_idle_one_does_not():
    busy = start_group("import os\nos.fork()\nwhile True: pass")  # two processes spinning
    idle = start_group("import time\ntime.sleep(60)")
    try:
        time.sleep(0.5)  # past the interpreters' start-up, which is CPU work
        meter = UsageMeter()
        groups = {busy.pid, idle.pid}
        meter.read(groups)
        time.sleep(1.0)
        usages = meter.read(groups)
        busy_usage, idle_usage = usages[busy.pid], usages[idle.pid]
        # Both processes of the group count. The machine may be busy: no exact share.
        assert busy_usage.cpu_percent > 40
        assert idle_usage.cpu_percent < 5
        assert 1 << 20 < idle_usage.memory_bytes < 200 << 20
    finally:
        for process in (busy, idle):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert meter.read(groups) == {}
