"""``python -m ops``: the same as the ``simple-otp`` command (see ops.cli)."""

import sys

from ops.cli import main

sys.exit(main())
