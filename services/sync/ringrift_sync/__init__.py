"""RingRift sync service (process `ringrift-sync`)."""
