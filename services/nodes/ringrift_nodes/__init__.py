"""RingRift nodes service (process `ringrift-nodes`)."""
