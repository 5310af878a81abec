"""The ``ipledger`` command line: one package, one module per command family, dispatched by
:mod:`ipledger.network.cli.commands`. It sits at the top of the dependency graph: it may import
the network, the gateway and the contract; nothing imports it."""
from ipledger.network.cli.commands import main

__all__ = ["main"]
