"""StateService's Alembic migrations (versions/), run by ringrift_runtime.db at start."""

# The newest revision in versions/: a start on a database already there loads no Alembic
# (ringrift_runtime.db.upgrade). A test checks it is Alembic's head; a new migration
# moves it.
HEAD = "0007"
