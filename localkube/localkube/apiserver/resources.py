"""Resource lists added up as Go's `resource.Quantity` adds them, for limit ranges and quotas.

A sum keeps the format of its first term (64Mi + 64Mi is 128Mi, 500m + 500m is 1), because the messages and
statuses that show sums print them with `Quantity.String()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from localkube.apiserver.validation import format_quantity, parse_quantity, quantity_format


@dataclass(frozen=True)
class Amount:
    value: Decimal
    fmt: str = "DecimalSI"

    @classmethod
    def of(cls, raw: Any) -> Amount | None:
        try:
            return cls(parse_quantity(raw), quantity_format(raw))
        except (ValueError, TypeError):
            return None

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, self.fmt)

    def __str__(self) -> str:
        return format_quantity(self.value, self.fmt)


ONE = Amount(Decimal(1))
ZERO = Amount(Decimal(0))
Resources = dict[str, Amount]


def parse(values: Any) -> Resources:
    """A resource list (`{"cpu": "500m"}`) as Amounts; unparsable entries (a decode error elsewhere) are left out."""
    out: Resources = {}
    for name, raw in (values.items() if isinstance(values, Mapping) else ()):
        amount = Amount.of(raw)
        if amount is not None:
            out[str(name)] = amount
    return out


def add(total: Resources, more: Mapping[str, Amount]) -> None:
    for name, amount in more.items():
        total[name] = total[name] + amount if name in total else amount


def maximum(total: Resources, other: Mapping[str, Amount]) -> None:
    for name, amount in other.items():
        if name not in total or amount.value > total[name].value:
            total[name] = amount


def pod_resources(spec: Mapping[str, Any], which: str, *, overhead: bool) -> Resources:
    """The pod's `requests` or `limits`: its containers summed, sidecars included, against the largest init
    container (PodRequests/PodLimits); the pod overhead added when asked (to limits only where a limit is set)."""
    def of(container: Any) -> Resources:
        return parse(((container or {}).get("resources") or {}).get(which)) if isinstance(container, Mapping) else {}

    total: Resources = {}
    for container in spec.get("containers") or ():
        add(total, of(container))
    sidecars: Resources = {}
    init: Resources = {}
    for container in spec.get("initContainers") or ():
        own = of(container)
        if isinstance(container, Mapping) and container.get("restartPolicy") == "Always":
            add(total, own)
            add(sidecars, own)
            current = dict(sidecars)
        else:
            current = dict(own)
            add(current, sidecars)
        maximum(init, current)
    maximum(total, init)
    if overhead:
        extra = parse(spec.get("overhead"))
        add(total, extra if which == "requests" else {k: v for k, v in extra.items() if k in total})
    return total


def text(values: Mapping[str, Amount], names: Iterable[str]) -> str:
    """`cpu=500m,memory=1Gi`: the named entries, sorted, as quota messages print resource lists."""
    return ",".join(f"{name}={values[name]}" for name in sorted(names) if name in values)
