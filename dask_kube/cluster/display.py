"""What a person sees: a spinner with the current phase while a cluster starts, and the HTML repr's status rows.

The spinner is rich's `Status` and only runs in a terminal or Jupyter (its refresh thread stops with it);
elsewhere, and when `quiet`, nothing is drawn and messages only go to the cluster manager's log.
"""

from __future__ import annotations

import html
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.status import Status


class StartupSpinner:
    """`with StartupSpinner(name, quiet) as spinner: spinner.update("Pending: pulling image")`."""

    def __init__(self, name: str, quiet: bool, console: Console | None = None) -> None:
        self.name = name
        self.console = console or Console(stderr=True)
        self.enabled = not quiet and (self.console.is_terminal or self.console.is_jupyter)
        self._status: Status | None = None
        self._phase = "Starting"
        self._message = ""

    def _text(self) -> str:
        detail = f" [dim]{self._message}[/dim]" if self._message else ""
        return f"KubeCluster [magenta]{self.name}[/magenta]: [bold]{self._phase}[/bold]{detail}"

    def __enter__(self) -> StartupSpinner:
        if self.enabled:
            self._status = self.console.status(self._text(), spinner="dots")
            self._status.start()
        return self

    def update(self, phase: str | None = None, message: str | None = None) -> None:
        if phase is not None:
            self._phase = phase
        if message is not None:
            self._message = message
        if self._status is not None:
            self._status.update(self._text())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def status_rows(rows: dict[str, Any]) -> str:
    """`<tr>` rows for distributed's cluster template (`cluster_status`), which already shows the name, the
    dashboard link and the workers."""
    cells = []
    for key, value in rows.items():
        text = html.escape(str(value)) if value not in (None, "") else "-"
        if key == "Dashboard" and value:
            text = f'<a href="{html.escape(str(value))}" target="_blank">{text}</a>'
        cells.append(f'<tr><td style="text-align: left;"><strong>{html.escape(key)}:</strong> {text}</td></tr>')
    return "".join(cells)
