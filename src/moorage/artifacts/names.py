"""Which relative paths may land in a model folder (spec/CONTAINER.md §2)."""

from collections.abc import Iterable

# ext4, xfs and friends refuse longer names; SageMaker rejects them up front too.
MAX_SEGMENT_BYTES = 255


def unsafe_reason(segments: Iterable[str]) -> str | None:
    """Why a relative path, split on '/', must not be written, or None when it is safe.

    These are the names SageMaker refuses in an S3 prefix; tar member names go through the
    same rules after their harmless './' and '//' parts are dropped.
    """
    for segment in segments:
        if segment in (".", ".."):
            return f"has a {segment!r} segment"
        if not segment.strip():
            return "has an empty or blank segment"
        if "\0" in segment:
            return "contains a NUL byte"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None
