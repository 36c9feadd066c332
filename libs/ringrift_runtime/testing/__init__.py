"""Test support shipped with the runtime: servicers on port 0 in-process and a
temporary PostgreSQL server. Process launchers live in ringrift_runtime.local."""
