"""Which dashboard link to give, and what to say when the browser cannot open it.

A client in a pod (a JupyterHub notebook) reaches the scheduler by its Service name, which the person's browser,
outside the cluster, cannot resolve. Dask's `distributed.dashboard.link` template is how JupyterHub deployments say
where a browser finds a dashboard: jupyter-server-proxy serves `{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status` from
port `{port}` of the notebook's own pod. So, in a pod:

- a template that names `{port}` and not `{host}` (that convention) needs the dashboard on this pod's localhost:
  the client forwards it there (`needs_local_dashboard`) and fills in the forward's port;
- any other template that was set is filled with the Service's host and port;
- distributed's default template gives the Service's address, and `how_to_reach` says how a browser gets there.

Outside a pod nothing changes: the link is the port-forward's or the Service's, through the template.
"""

from __future__ import annotations

import dask.config

DEFAULT_TEMPLATE = "{scheme}://{host}:{port}/status"  # distributed's own default for distributed.dashboard.link
KEY = "distributed.dashboard.link"


def template() -> str:
    return str(dask.config.get(KEY, default=DEFAULT_TEMPLATE))


def template_set() -> bool:
    """Whether someone set `distributed.dashboard.link` (JupyterHub images do)."""
    return template() != DEFAULT_TEMPLATE


def needs_local_dashboard(in_pod: bool) -> bool:
    """The jupyter-server-proxy convention in a pod: the link names a port of this pod, so the dashboard must be
    forwarded to this pod's localhost."""
    text = template()
    return in_pod and template_set() and "{port}" in text and "{host}" not in text


def how_to_reach(namespace: str, cluster: str, link: str) -> str:
    """What a person can do when the link is the Service's, which only the cluster's own network resolves."""
    return (f"the dashboard at {link} is reachable from inside the Kubernetes cluster only. From a browser: run "
            f"`dask kube port-forward {cluster} -n {namespace}` where the browser runs, or, in JupyterHub with "
            "jupyter-server-proxy, set the dask config distributed.dashboard.link to "
            "'{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status' (docs/jupyterhub.md)")
