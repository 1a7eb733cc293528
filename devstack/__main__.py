"""``python -m devstack``: run the whole system locally (see devstack.run)."""

import sys

from devstack.run import main

sys.exit(main())
