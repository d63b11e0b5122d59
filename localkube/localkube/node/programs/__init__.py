"""Programs that stand in for those of well-known images (catalog.py): the kubelet runs them as scripts.

Each module here must import only the standard library and nothing of LocalKube, because the catalog's wrappers
run the file directly (`python .../pause.py`): importing the `localkube` package would cost every such container
half a second of start-up.
"""
