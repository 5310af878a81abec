import sys

from ipledger.network.cli.commands import main

sys.exit(main())
