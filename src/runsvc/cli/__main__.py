"""`python -m runsvc.cli`: the same as the `runsvc` command."""

import sys

from runsvc.cli.main import main

sys.exit(main())
