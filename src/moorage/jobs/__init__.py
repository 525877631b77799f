"""Work the server does after answering: the asynchronous-inference queue, and batch transform.

Asynchronous requests wait in the store (``store.async_invocations``) and run on the endpoints'
instances through the routing table, as InvokeEndpoint's do. Transform jobs (``store.
transform_jobs``) run on instances started for them by the ``InstanceStarter`` the server hands
in. Must not import ``api`` or ``control``.
"""

from moorage.jobs.async_inference import Accepted, AsyncInference, AsyncRequest
from moorage.jobs.transform import InstanceStarter, JobInstances, TransformRunner
from moorage.jobs.transform_settings import TransformSettings

__all__ = [
    "Accepted",
    "AsyncInference",
    "AsyncRequest",
    "InstanceStarter",
    "JobInstances",
    "TransformRunner",
    "TransformSettings",
]
