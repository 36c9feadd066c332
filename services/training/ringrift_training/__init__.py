"""RingRift training service (process `ringrift-training`)."""
