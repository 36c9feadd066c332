"""Co-hosting: StateService and the five managers in one process on one machine."""
