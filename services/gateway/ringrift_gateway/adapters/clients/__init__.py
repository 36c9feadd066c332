"""The gateway's clients, one per service it calls. Every failed call raises the
taxonomy error it stands for (ringrift_runtime.grpc.calls)."""
