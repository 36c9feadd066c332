"""RingRift jobs service (process `ringrift-jobs`)."""
