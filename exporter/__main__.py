"""``python -m exporter``: the same as ``kvscale-exporter``."""

import sys

from exporter.cli import main

sys.exit(main())
