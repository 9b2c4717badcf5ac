"""``python -m dashboards``: the same as ``kvscale-dashboards``."""

import sys

from dashboards.cli import main

sys.exit(main())
