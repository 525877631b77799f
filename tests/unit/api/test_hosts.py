import socket

import pytest

from moorage.api.hosts import HostCheck


@pytest.mark.parametrize(
    "host",
    [
        None,
        "127.0.0.1:8080",
        "127.0.0.1",
        "localhost:8080",
        "LOCALHOST",
        "api.localhost:9000",
        "[::1]:8080",
        "10.1.2.3:80",
        "localhost.",
    ],
)
def test_addresses_and_localhost_are_answered(host):
    assert HostCheck().allows(host)


@pytest.mark.parametrize(
    "host", ["evil.example:8080", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io"]
)
def test_other_names_are_not(host):
    assert not HostCheck().allows(host)


def test_names_can_be_allowed():
    check = HostCheck([" moorage.internal ", "Host.Docker.Internal", ""])
    assert check.allows("moorage.internal:8080")
    assert check.allows("host.docker.internal")
    assert not check.allows("other.internal")
    assert check.allows("host.docker.internal")  # remembered verdicts stay right


def test_this_machines_own_name_is_answered():
    assert HostCheck().allows(f"{socket.gethostname()}:8080")
