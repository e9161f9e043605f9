"""Command-line interface of ``loce`` (see :mod:`loce.cli.main`)."""
