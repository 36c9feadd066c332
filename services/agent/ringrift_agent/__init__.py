"""RingRift agent service (process `ringrift-agent`)."""
