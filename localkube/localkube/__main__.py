"""`python -m localkube`: the same as the `localkube` command."""

import sys

from localkube.cli import main

sys.exit(main())
