"""The instance process: runs a user's inference.py behind the SageMaker container contract.

Started by the server as ``python -m moorage.runtime`` (or by ``moorage serve-model``); imports
nothing server-side, so it stays light to start.
"""
