"""The commands of ``ringrift``, one module per area; ``ringrift_cli.app`` registers them."""
