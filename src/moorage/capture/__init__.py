"""Data capture: a sample of an endpoint's requests and responses, written as SageMaker writes
them, to ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``.

Owns the capture files' format (``records``), where they go (``destinations``: s3:// or a local
folder) and how they get there (``writer``: the invocation path's hook, then a thread). Must not
import the server-side packages above it, nor block, slow or fail an invocation.
"""

from moorage.capture.destinations import destination
from moorage.capture.writer import CaptureWriter, VariantCapture, check_config

__all__ = ["CaptureWriter", "VariantCapture", "check_config", "destination"]
