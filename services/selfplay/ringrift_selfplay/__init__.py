"""RingRift selfplay service (process `ringrift-selfplay`)."""
