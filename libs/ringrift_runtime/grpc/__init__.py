"""gRPC plumbing shared by every process: status mapping, interceptors, server
bootstrap and client channels."""
