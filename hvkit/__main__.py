"""``python -m hvkit`` runs the hvkit command."""

import sys

from .cli import main

sys.exit(main())
