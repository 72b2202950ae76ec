"""One module per `asyncinfer` subcommand: add_arguments(parser) and run(args) -> int."""
