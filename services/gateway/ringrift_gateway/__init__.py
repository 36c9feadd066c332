"""RingRift gateway service (process `ringrift-gateway`)."""
