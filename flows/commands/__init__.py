"""CLI subcommands, one module per stage; each defines `register(subparsers)`."""
