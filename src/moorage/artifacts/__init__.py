"""Model artifacts: fetch model data (path, file://, s3://), unpack it safely, cache it by digest.

Owns the local model folder: where it comes from, that nothing in it escapes it, that each
archive, S3 listing or requirements file is unpacked or installed once per cache, even with
concurrent workers, and that unpacked models no process uses are evicted to keep the cache
within its disk budget. Must not import server-side packages or the runtime, import boto3
before S3 is used, nor install anything into the running Python environment.
"""

from moorage.artifacts.codedir import resolve_code_dir
from moorage.artifacts.eviction import DiskBudget, Lease, ModelCache
from moorage.artifacts.fetch import local_path, materialize
from moorage.artifacts.requirements import install_requirements

__all__ = [
    "DiskBudget",
    "Lease",
    "ModelCache",
    "install_requirements",
    "local_path",
    "materialize",
    "resolve_code_dir",
]
