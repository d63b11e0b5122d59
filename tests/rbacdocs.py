"""The Role that docs/rbac.md documents for KubeCluster users, read from the page itself, so that the tests check
what people are told to apply."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.paths import REPO

DOCS_RBAC = REPO / "docs" / "rbac.md"


def documented_user_role(namespace: str, account: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding from docs/rbac.md, moved to `namespace` and bound to ServiceAccount `account`."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS_RBAC.read_text(), flags=re.S)
    docs = [d for block in blocks for d in yaml.safe_load_all(block) if d]
    role = next(d for d in docs if d["kind"] == "Role")
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    for doc in (role, binding):
        doc["metadata"]["namespace"] = namespace
    binding["subjects"] = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    return [role, binding]
