"""Handler invocations of the kopf test operator: (handler, object name, monotonic time)."""

RECORDS: list[tuple[str, str, float]] = []
