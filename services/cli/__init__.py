"""The `ringrift` command line."""
