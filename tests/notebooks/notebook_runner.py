"""Run a notebook with papermill the way ``make run`` does, for tests."""

from __future__ import annotations

from pathlib import Path

import papermill as pm

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(name: str, out_dir: Path, **parameters):
    """Execute ``notebooks/<name>`` into ``out_dir``; return the executed notebook."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return pm.execute_notebook(
        str(NOTEBOOKS / name),
        str(out_dir / name),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )


def outputs_text(nb) -> str:
    """All text and text/plain outputs of an executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
            parts.append(out.get("evalue", ""))
    return "\n".join(parts)
