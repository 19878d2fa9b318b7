"""``python -m flatness``: the command line."""

import sys

from flatness.cli import main

sys.exit(main())
