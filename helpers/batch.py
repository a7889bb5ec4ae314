"""Run the notebooks for every point of a parameter grid, then summarise the results.

    python -m helpers.batch --out DIR [--grid NAME=V1,V2,...]... [--set NAME=VALUE]...
                            [--notebooks 01,03 | --notebooks 'notebooks/0[34]_*.ipynb']

    python -m helpers.batch --out artifacts/sweep --set data_source=sample \\
        --grid learning_rate=1e-4,2e-4 --grid training_steps=20,50

Each point of the cartesian product of the ``--grid`` lists (``--set`` values go to every
point) runs the notebooks in order in ``DIR/<run-name>/`` (``learning_rate-0.0001__...``,
``default`` without a grid), their absolute ``work_dir``, which keeps them executed as the
log. Values are Python literals when they parse (``1e-4``, ``False``, ``[1,2]``), else
strings (``local``); a ``--grid`` list of literals splits only at the commas outside
brackets and quotes (``'x=[1,2],[3]'``, ``"s='a,b','c'"``), any other at every comma.
A name goes only to the notebooks whose ``parameters`` cell declares it; unknown names and
``work_dir`` are refused before anything runs (exit 2). A failing point is recorded and the
others go on (exit 1). Rerunning skips the points whose ``status.json`` records a success
with the same parameters and notebooks. ``DIR/summary.csv``, ``summary.md`` and
``summary.png`` cover every point. Notebooks run in their folder (``notebooks/``, as in
``make run``), where relative paths in values start. From Python, ``run_batch(out_dir,
grid={"learning_rate": [1e-4, 2e-4]}, fixed={"training_steps": 20})`` returns the summary.

The same with the papermill CLI: a folder per point, and each ``-p`` only to the notebooks
that declare it (``papermill --help-notebook NOTEBOOK`` lists them)::

    for lr in 0.0001 0.0002; do
        out="$PWD/artifacts/sweep/learning_rate-$lr"; mkdir -p "$out"
        papermill --cwd notebooks notebooks/01_explore_data.ipynb "$out/01.ipynb" \\
            -p work_dir "$out" -p data_source sample
        papermill --cwd notebooks notebooks/02_format_data.ipynb "$out/02.ipynb" -p work_dir "$out"
        papermill --cwd notebooks notebooks/03_train_classifier.ipynb "$out/03.ipynb" \\
            -p work_dir "$out" -p learning_rate "$lr"
        papermill --cwd notebooks notebooks/04_inference_evaluation.ipynb "$out/04.ipynb" \\
            -p work_dir "$out"
    done
"""

from __future__ import annotations

import argparse
import ast
import difflib
import glob
import hashlib
import itertools
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
from tqdm import tqdm

from helpers.notebook import project_root

RESULTS = ["status", "accuracy", "macro_f1", "train_seconds", "wall_seconds", "failed_notebook",
           "error"]


class BatchError(ValueError):
    """The batch is misconfigured (unknown parameter, no notebook, ...); nothing was run."""


def parse_value(text: str):
    """A Python literal when ``text`` is one, else the string itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def split_values(text: str) -> list:
    """``"1e-4,2e-4"`` -> ``[0.0001, 0.0002]``, ``"[1,2],[3]"`` -> ``[[1, 2], [3]]``; when
    some value is not a literal (``"local,mistral"``), every comma splits."""
    try:
        return list(ast.literal_eval(f"[{text}]"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return [parse_value(item) for item in text.split(",")]


def _assignments(texts: list[str], parse) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": parse("1"), "b": parse("x")}``; names must be unique."""
    result = {}
    for text in texts:
        name, sep, value = (part.strip() for part in text.partition("="))
        if not sep or not name.isidentifier() or name in result:
            raise BatchError(f"expected NAME=VALUE with a new NAME, got {text!r}")
        result[name] = parse(value)
    return result


def run_name(point: dict) -> str:
    """A readable, stable folder name for a grid point, e.g. ``lr-0.0001__steps-20``."""
    raw = "__".join(f"{name}-{value}" for name, value in point.items()) or "default"
    name = re.sub(r"[^\w.+-]", "_", raw, flags=re.ASCII)
    if name != raw or len(name) > 120:  # keep names unique once characters were replaced
        name = f"{name[:100]}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return name


def select_notebooks(selection=None) -> list[Path]:
    """All ``notebooks/[0-9][0-9]_*.ipynb`` of the project, or the given globs, paths and name
    prefixes (a list, or comma-separated: ``"01,03"``), in the given order."""
    root = project_root()
    project = sorted(root.glob("notebooks/[0-9][0-9]_*.ipynb")) if root else []
    items = project if selection is None else (
        selection.split(",") if isinstance(selection, str) else selection)
    paths: list[Path] = []
    for item in (str(i).strip() for i in items):
        found = sorted(glob.glob(item)) or [p for p in project if p.name.startswith(item)]
        if not found:
            raise BatchError(f"no notebook matches {item!r}")
        paths += [p for p in (Path(f).resolve() for f in found) if p not in paths]
    if not paths:
        raise BatchError("no notebooks to run")
    return paths


def declared_parameters(path: Path) -> list[str]:
    """Names assigned in the notebook's ``parameters`` cell. Parsed with ``ast``, because
    ``papermill.inspect_notebook`` skips lines with two ``=`` (e.g. one in the comment)."""
    for cell in nbformat.read(path, as_version=4).cells:
        if "parameters" in cell.metadata.get("tags", []):
            try:
                body = ast.parse(cell.source).body
            except SyntaxError:  # IPython magics: papermill's own parser
                return list(pm.inspect_notebook(str(path)))
            targets = [t for node in body if isinstance(node, ast.Assign) for t in node.targets]
            targets += [node.target for node in body if isinstance(node, ast.AnnAssign)]
            return list(dict.fromkeys(t.id for t in targets if isinstance(t, ast.Name)))
    return []


def check_names(names, declared: dict[Path, list[str]]) -> None:
    """Refuse ``work_dir`` and names that no notebook declares, listing the parameters."""
    known = sorted({n for names_ in declared.values() for n in names_} - {"work_dir"})
    problems = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        if name == "work_dir":
            problems.append("'work_dir' is set by the runner (DIR/<run-name>/)")
        elif name not in known:
            problems.append(f"unknown parameter {name!r}"
                            + (f" (did you mean {close[0]!r}?)" if close else ""))
    if problems:
        listing = "".join(f"\n  {p.name}: {', '.join(n) or '-'}" for p, n in declared.items())
        raise BatchError("; ".join(problems) + ". Parameters per notebook:" + listing)


def _quiet_papermill(record: logging.LogRecord) -> bool:
    """Drop papermill's warnings about names its parser misses; we check names ourselves."""
    return not record.getMessage().startswith(("Passed unknown param", "Unable to parse line"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _run_point(folder: Path, params: dict, notebooks, declared, bar) -> dict:
    """Execute the notebooks for one point; write ``status.json`` and return its content."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ["status.json", *(p.name for p in notebooks)]:
        (folder / stale).unlink(missing_ok=True)
    outputs = [folder / "metrics.json", folder / "job.json"]
    before = [p.stat().st_mtime_ns if p.exists() else None for p in outputs]
    status = {"status": "ok", "parameters": params, "notebooks": [p.name for p in notebooks],
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    start = time.perf_counter()
    for i, path in enumerate(notebooks):
        nb_params = {k: v for k, v in params.items() if k in declared[path]}
        if "work_dir" in declared[path]:
            nb_params["work_dir"] = str(folder)
        try:
            pm.execute_notebook(str(path), str(folder / path.name), parameters=nb_params,
                                cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        except Exception as exc:  # record it, go on with the next point
            text = (f"{exc.ename}: {exc.evalue}" if isinstance(exc, pm.PapermillExecutionError)
                    else f"{type(exc).__name__}: {exc}")
            error = [line for line in text.splitlines() if line.strip()][-1]
            status.update(status="failed", failed_notebook=path.name, error=error)
            bar.update(len(notebooks) - i)
            break
        bar.update(1)
    # results only from files this run wrote, not from an earlier run in the same folder
    metrics, job = (_read_json(p) if p.exists() and p.stat().st_mtime_ns != mtime else {}
                    for p, mtime in zip(outputs, before, strict=True))
    status["results"] = {"accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
                         "train_seconds": job.get("train_seconds")}
    status["wall_seconds"] = round(time.perf_counter() - start, 1)
    status["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = folder / "status.json.tmp"  # written then renamed: a status.json is always complete
    tmp.write_text(json.dumps(status, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, folder / "status.json")
    return status


def run_batch(out_dir, grid: dict | None = None, fixed: dict | None = None, notebooks=None,
              progress: bool = True) -> pd.DataFrame:
    """Run ``notebooks`` for every point of ``grid`` (name -> list of values) with the
    ``fixed`` values; write the summary files into ``out_dir`` and return the summary table.
    Raises :class:`BatchError` before running anything when the batch is misconfigured."""
    grid, fixed = dict(grid or {}), dict(fixed or {})
    paths = select_notebooks(notebooks)
    declared = {p: declared_parameters(p) for p in paths}
    check_names([*grid, *fixed], declared)
    if both := sorted(set(grid) & set(fixed)):
        raise BatchError(f"parameter(s) both swept and fixed: {', '.join(both)}")
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    names = [run_name(point) for point in points]
    if not points or len(set(names)) < len(names):
        raise BatchError("a --grid list is empty or gives the same run name twice")

    out, rows = Path(out_dir).resolve(), []
    loggers = [logging.getLogger(n) for n in ("papermill", "papermill.translators")]
    for logger in loggers:
        logger.addFilter(_quiet_papermill)
    bar = tqdm(total=len(points) * len(paths), unit="notebook", disable=not progress)
    try:
        for n, (point, name) in enumerate(zip(points, names, strict=True), 1):
            params = {**point, **fixed}
            status = _read_json(out / name / "status.json")
            wanted = {"status": "ok", "notebooks": [p.name for p in paths],
                      "parameters": json.loads(json.dumps(params, default=str))}
            done = all(status.get(key) == value for key, value in wanted.items())
            if done:
                bar.update(len(paths))
            else:
                status = _run_point(out / name, params, paths, declared, bar)
            row = {"run": name, **params, **{k: status.get(k) for k in RESULTS},
                   **status.get("results", {})}
            rows.append(row)
            if progress:
                bar.write(f"[{n}/{len(points)}] {name}: {row['status']}"
                          + (" (done earlier)" if done else f" in {row['wall_seconds']:.0f} s")
                          + ("" if row["accuracy"] is None else f", accuracy {row['accuracy']:.3f}")
                          + (f", {row['failed_notebook']}: {row['error']}" if row["error"] else ""))
    finally:
        bar.close()
        for logger in loggers:
            logger.removeFilter(_quiet_papermill)
    df = pd.DataFrame(rows, columns=["run", *grid, *fixed, *RESULTS])
    write_summary(df, out, list(grid))
    return df


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if value != value else format(value, ".4g" if abs(value) < 1000 else ".0f")
    return "" if value is None else " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no ``tabulate`` needed)."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def plot_summary(df: pd.DataFrame, swept: list[str], path: Path) -> None:
    """Accuracy against each swept parameter, one panel each (bars for non-numbers)."""
    from matplotlib.figure import Figure  # no pyplot: works headless, leaves backends alone

    swept = swept or ["run"]
    fig = Figure(figsize=(4.5 * len(swept), 3.5), layout="constrained")
    accuracy = pd.to_numeric(df["accuracy"], errors="coerce")
    for ax, name in zip(fig.subplots(1, len(swept), squeeze=False)[0], swept, strict=True):
        values = df[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.scatter(values, accuracy, alpha=0.5)
            mean = accuracy.groupby(values).mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o")
            if values.min() > 0 and values.max() >= 100 * values.min():
                ax.set_xscale("log")
        else:
            mean = accuracy.groupby(values.astype(str), sort=False).mean()
            ax.bar(mean.index, mean.fillna(0).to_numpy())
            ax.tick_params(axis="x", labelrotation=30)
        ax.set(xlabel=name, ylabel="accuracy", title=f"accuracy vs {name} (line, bars: mean)")
    fig.savefig(path, dpi=100)


def write_summary(df: pd.DataFrame, out: Path, swept: list[str]) -> None:
    """``summary.csv``, ``summary.png`` and ``summary.md`` (table + plot) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "summary.csv", index=False)
    plot_summary(df, swept, out / "summary.png")
    ok = int((df["status"] == "ok").sum())
    (out / "summary.md").write_text(
        f"# Batch summary\n\n{len(df)} points: {ok} ok, {len(df) - ok} failed.\n\n"
        f"{markdown_table(df)}\n\n![accuracy against each swept parameter](summary.png)\n",
        encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the runs and the summary")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="values to sweep (repeat for a cartesian product)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        dest="fixed", help="a value for every point")
    parser.add_argument("--notebooks", metavar="GLOB|PREFIXES",
                        help="globs, paths or name prefixes, comma-separated (default: all)")
    args = parser.parse_args(argv)
    try:
        grid, fixed = _assignments(args.grid, split_values), _assignments(args.fixed, parse_value)
        df = run_batch(args.out, grid, fixed, args.notebooks)
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"summary: {Path(args.out) / 'summary.md'}")
    return 0 if (df["status"] == "ok").all() else 1


if __name__ == "__main__":
    sys.exit(main())
