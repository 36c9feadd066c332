"""RingRift state service (process `ringrift-state`): the only owner of the database."""
