"""What can go wrong in moorage, as one tree. No HTTP here: each adapter maps classes to statuses.

MoorageError
├── ValidationError          the caller's input is wrong
│   └── ArtifactError        model data cannot be fetched, or is unsafe or malformed
├── NotFound                 the named resource does not exist
├── Conflict                 in use, or in the wrong status
│   └── InvalidTransition    a state machine refused
├── LimitExceeded            the request asks for more than moorage can run (instances)
├── InstanceUnavailable      no healthy instance or worker, or it died mid-request
├── LoadError                a model could not be loaded (install, import or model_fn)
└── ModelError               user code failed; carries the status and body it produced
"""


class MoorageError(Exception):
    """Base of every error moorage raises on purpose."""


class ValidationError(MoorageError):
    """The caller's input is wrong."""


class ArtifactError(ValidationError):
    """Model data cannot be fetched, or the archive is unsafe or malformed."""


class NotFound(MoorageError):
    """The named resource does not exist."""


class Conflict(MoorageError):
    """The resource is in use, or in a status that does not allow the operation."""


class InvalidTransition(Conflict):
    """A state machine refused a transition."""


class LimitExceeded(MoorageError):
    """The request asks for more than moorage can run, such as more instances than its limit."""


class InstanceUnavailable(MoorageError):
    """No healthy instance or worker can take the request, or it died while serving it."""


class LoadError(MoorageError):
    """A model could not be loaded: requirements install, import of the script, or model_fn."""


class ModelError(MoorageError):
    """User code failed; ``status`` and ``body`` are what the caller should see."""

    def __init__(self, message: str, *, status: int = 500, body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = message.encode() if body is None else body
