"""Cluster coordination on etcd: leases, membership, service registry, leader election.

This package is the only code that imports the etcd client (aetcd)."""
