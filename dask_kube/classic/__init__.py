"""Deprecated: legacy mode moved to `dask_kube.legacy`; this name stays for code that imports it."""

import sys
import warnings

from .. import legacy

warnings.warn("dask_kube.classic is now dask_kube.legacy; import it from there", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = legacy
