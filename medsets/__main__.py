"""`python -m medsets` is the `medsets` command."""

import sys

from .cli import main

sys.exit(main())
