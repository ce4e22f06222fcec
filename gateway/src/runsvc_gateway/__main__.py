"""`python -m runsvc_gateway`: the same as the `runsvc-gateway` command."""

from __future__ import annotations

import sys

from runsvc_gateway.cli import main

sys.exit(main())
