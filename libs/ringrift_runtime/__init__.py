"""Shared runtime of every RingRift process: settings, logging, errors, gRPC plumbing,
metrics, cluster coordination and test support. Nothing here has business meaning."""

__version__ = "0.1.0"
