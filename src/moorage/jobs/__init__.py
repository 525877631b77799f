"""Work the server does after answering: the asynchronous-inference queue.

Requests wait in the store (``store.async_invocations``) and run on the endpoints' instances
through the routing table, as InvokeEndpoint's do. Must not import ``api`` or ``control``.
"""

from moorage.jobs.async_inference import Accepted, AsyncInference, AsyncRequest

__all__ = ["Accepted", "AsyncInference", "AsyncRequest"]
