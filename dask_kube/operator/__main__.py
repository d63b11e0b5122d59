"""`python -m dask_kube.operator`: see main.py."""

import sys

from .main import main

sys.exit(main())
