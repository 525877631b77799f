"""The control side: use cases that write desired state, and the reconciler that reaches it.

Owns what an endpoint should run and the operations that get it there (create, restore after a
restart, heal, blue/green update, rescale, delete). Never on the invocation path: it installs
routes; the runtime API only reads them.
"""
