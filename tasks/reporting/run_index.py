"""data/index.html: every run and its reports, newest first, on one page that opens offline.

Links are relative to the data root, so the folder can be copied or served as it is.
Rewritten at the end of every nightly and monitor run, and by every rollback: the page
says what `latest` serves, and when that is not the newest version kept, which newer ones
are kept but not served (a rollback). Every text from the shop or a run is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from prefect import task

from tasks.reporting.report_html import page
from tasks.run_context import DataRoot

NIGHTLY_REPORTS = (
    ("data report", "reports/data_report.html"),
    ("evaluation", "reports/evaluation_report.html"),
    ("data docs", "data_docs/index.html"),
)


def _links(root: Path, folder: Path, reports: tuple[tuple[str, str], ...]) -> str:
    found = [
        f'<a href="{html.escape(str((folder / rel).relative_to(root)))}">{html.escape(label)}</a>'
        for label, rel in reports
        if (folder / rel).exists()
    ]
    return " · ".join(found) or "none"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _created_at(manifest: dict) -> datetime | None:
    try:
        created = datetime.fromisoformat(str(manifest["created_at"]))
    except (KeyError, ValueError):
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _published_after(published: Path, serving: str, manifest: dict) -> list[str]:
    """Versions kept under `published/` that were published after the one `latest` serves
    (by their manifests' `created_at`): after a rollback, the ones rolled back from."""
    since = _created_at(manifest)
    if since is None or not published.is_dir():
        return []
    newer = []
    for folder in sorted(published.iterdir()):
        if folder.name in (serving, "latest") or folder.name.startswith("."):
            continue
        if folder.is_symlink() or not folder.is_dir():
            continue
        created = _created_at(_read(folder / "manifest.json"))
        if created is not None and created > since:
            newer.append(folder.name)
    return newer


def _serving(published: Path, manifest: dict) -> str:
    """What `latest` points at (the link is the truth, the manifest adds its run)."""
    if not manifest:
        return "<p>Nothing is published yet.</p>"
    latest = published / "latest"
    version = (
        Path(os.readlink(latest)).name
        if latest.is_symlink()
        else str(manifest.get("model_version"))
    )
    line = (
        f"<p>Serving <code>{html.escape(version)}</code> "
        f"(run {html.escape(str(manifest.get('run_id')))}).</p>"
    )
    if newer := _published_after(published, version, manifest):
        kept = ", ".join(f"<code>{html.escape(v)}</code>" for v in newer)
        line += f"<p>Rolled back: published later, kept but not served: {kept}.</p>"
    return line


def _cells(values: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"


@task(name="write-index")
def write_index(data_root: Path) -> Path:
    root = Path(data_root)
    latest = DataRoot.of(root).latest
    manifest = _read(latest / "manifest.json") if latest.exists() else {}
    rows = []
    for folder in sorted(DataRoot.of(root).runs.glob("*"), reverse=True):
        if not folder.is_dir():
            continue
        metrics = _read(folder / "metrics.json")
        gate = metrics.get("gate", {})
        status = (
            "no metrics (stopped before the gate)"
            if not gate
            else ("gate passed" if gate.get("passed") else "gate refused")
        )
        if manifest.get("run_id") == folder.name:
            status += f" · serving as {manifest.get('model_version')}"
        rows.append(
            _cells(
                [
                    html.escape(folder.name),
                    html.escape(status),
                    html.escape(str(metrics.get("trigger") or "")),
                    _links(root, folder, NIGHTLY_REPORTS),
                ]
            )
        )
    monitors = []
    for folder in sorted((root / "monitor").glob("*"), reverse=True):
        report = _read(folder / "report.json")
        if not report:
            continue
        decision = report.get("decision", {})
        verdict = "RETRAIN" if decision.get("retrain") else "no retraining"
        monitors.append(
            _cells(
                [
                    html.escape(folder.name),
                    html.escape(str(report.get("published_version", ""))),
                    html.escape(verdict + ": " + "; ".join(decision.get("causes", []))),
                    _links(root, folder, (("drift report", "drift_report.html"),)),
                ]
            )
        )
    serving = _serving(DataRoot.of(root).published, manifest)
    body = (
        "<h1>Recommendation runs</h1>"
        + serving
        + "<h2>Nightly runs</h2><table><tr><th>run</th><th>outcome</th><th>started because</th>"
        + "<th>reports</th></tr>"
        + "".join(rows)
        + "</table><h2>Monitoring runs</h2><table><tr><th>run</th><th>watching</th>"
        + "<th>decision</th><th>report</th></tr>"
        + "".join(monitors)
        + "</table>"
    )
    path = root / "index.html"
    partial = root / ".index.html.partial"
    partial.write_text(page("Recommendation runs", body))
    partial.replace(path)
    return path
