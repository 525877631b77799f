"""Protocol adapters: the control plane (JSON 1.1), the runtime (rest-json), the console, /metrics.

Wire keys (PascalCase) and wire errors live here and nowhere else: requests are validated and
turned into domain records at the edge, and each adapter maps ``moorage.errors`` classes to its
own HTTP statuses and SageMaker codes. No business rules: those are in ``control`` and ``jobs``.
"""
