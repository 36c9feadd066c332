"""Test support shipped with the runtime: a real etcd on free ports, servicers on port 0
in-process, and service processes started from their console scripts."""
