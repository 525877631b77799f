"""moorage: self-hosted model hosting that speaks Amazon SageMaker's hosting APIs."""

__version__ = "0.1.0"
