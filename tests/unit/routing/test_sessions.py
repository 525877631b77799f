"""Where stateful sessions live (routing.sessions)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from moorage.http import ConnectionPool
from moorage.metrics import EndpointMetrics
from moorage.routing import InstanceRoute, Sessions, VariantRoute


@pytest.fixture
def route():
    loop = asyncio.new_event_loop()

    async def build() -> VariantRoute:
        variant = VariantRoute("A", 1.0, EndpointMetrics().for_variant("ep", "A"))
        for number in range(2):
            pool = ConnectionPool(unix_path=f"/nonexistent/{number}.sock")
            variant.instances.append(InstanceRoute(f"i-{number}", pool, "arn"))
        return variant

    yield loop.run_until_complete(build())
    loop.close()


def opened(session: str, minutes: float) -> list[tuple[str, str]]:
    expires = datetime.now(UTC) + timedelta(minutes=minutes)
    return [("X-Amzn-SageMaker-New-Session-Id", f"{session}; Expires={expires:%Y-%m-%dT%H:%M:%SZ}")]


def test_an_opened_session_is_found_until_closed(route):
    sessions = Sessions()
    sessions.note(opened("s1", 10), route, route.instances[1])
    assert sessions.find("s1") == (route, route.instances[1])
    sessions.note([("x-amzn-sagemaker-closed-session-id", "s1")], route, route.instances[1])
    assert sessions.find("s1") is None


def test_an_expired_session_is_not_found(route):
    sessions = Sessions()
    sessions.note(opened("old", -1), route, route.instances[0])
    assert sessions.find("old") is None


def test_a_session_whose_instance_left_is_not_found(route):
    sessions = Sessions()
    sessions.note(opened("s", 10), route, route.instances[0])
    route.instances.pop(0)
    assert sessions.find("s") is None


def test_a_session_without_a_readable_expiry_still_routes(route):
    sessions = Sessions()
    sessions.note([("x-amzn-sagemaker-new-session-id", "s; whenever")], route, route.instances[0])
    assert sessions.find("s") == (route, route.instances[0])


def test_expired_sessions_are_swept_as_the_table_grows(route):
    sessions = Sessions()
    for n in range(200):
        sessions.note(opened(f"old-{n}", -1), route, route.instances[0])
    sessions.note(opened("live", 10), route, route.instances[0])
    assert len(sessions) < 70
    assert sessions.find("live") is not None
