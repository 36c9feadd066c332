"""Launching real processes on this machine: an etcd server, RingRift service processes
and free ports. Used by `ringrift up`, the tests and the benchmarks."""
