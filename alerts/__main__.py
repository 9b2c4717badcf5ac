"""``python -m alerts`` is ``kvscale-alerts``."""

import sys

from alerts.cli import main

sys.exit(main())
