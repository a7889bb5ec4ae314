"""Classifier Factory training files: write them from DataFrames, and validate them.

The format is JSON Lines, one example per line::

    {"text": "wake me up at nine", "labels": {"intent": "alarm_set"}}

A label value is a string (single-label) or a list of strings (multi-label); ``labels`` may
hold several targets (multi-target). :func:`validate_training_files` checks one or more
training files and optional validation files and reports *every* problem with the file,
the line number and the field, instead of stopping at the first one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import pandas as pd

from helpers.fileio import atomic_write

FileArg = str | os.PathLike | tuple[str, str | os.PathLike]
"""A path, or ``(display_name, path)`` when the name to report differs from the path."""


def dataset_to_jsonl(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_columns: dict[str, str] | None = None,
) -> int:
    """Write ``df`` as a training file: ``{"text": ..., "labels": {target: value}}`` per line.

    ``label_columns`` maps target names to columns (default ``{"intent": "label_text"}``, the
    cookbook's format). Returns the number of lines written.
    """
    label_columns = label_columns or {"intent": "label_text"}
    lines = []
    for row in df.itertuples(index=False):
        row = row._asdict()
        labels = {target: _plain(row[column]) for target, column in label_columns.items()}
        lines.append(json.dumps({"text": row[text_column], "labels": labels}, ensure_ascii=False))
    atomic_write(path, "".join(line + "\n" for line in lines))
    return len(df)


def _plain(value):
    """numpy scalars/arrays (e.g. from parquet) to plain JSON types."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


@dataclass
class TargetInfo:
    """A target seen in the training files: its labels with counts, and its label shape."""

    name: str
    label_counts: Counter = field(default_factory=Counter)
    multi_label: bool = False

    @property
    def labels(self) -> list[str]:
        return sorted(self.label_counts)


MAX_KEPT_PROBLEMS = 1000  # of each severity; beyond it a problem is only counted


class Problems(list):
    """The problems found, keeping at most :data:`MAX_KEPT_PROBLEMS` of each severity (a file
    with a million bad lines must not take a million objects); the rest are only counted."""

    def __init__(self, *args):
        super().__init__(*args)
        self.kept: Counter = Counter(p.severity for p in self)
        self.dropped: Counter = Counter()

    def append(self, problem: Problem) -> None:
        if self.kept[problem.severity] >= MAX_KEPT_PROBLEMS:
            self.dropped[problem.severity] += 1
            return
        super().append(problem)
        self.kept[problem.severity] += 1


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=Problems)
    targets: dict[str, TargetInfo] = field(default_factory=dict)
    line_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, severity: str) -> int:
        """Every problem of ``severity`` found, kept or only counted."""
        dropped = getattr(self.problems, "dropped", Counter())
        return sum(p.severity == severity for p in self.problems) + dropped[severity]

    def summary(self, limit: int = 20) -> str:
        if not self.problems:
            counts = ", ".join(f"{name}: {n} examples" for name, n in self.line_counts.items())
            return f"OK ({counts})"
        shown = [str(p) for p in self.problems[:limit]]
        errors, warnings = self.count("error"), self.count("warning")
        more = errors + warnings - len(shown)
        if more > 0:
            shown.append(f"... and {more} more")
        head = f"{errors} error(s), {warnings} warning(s)"
        return head + "\n" + "\n".join(shown)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise TrainingFileError(self)


class TrainingFileError(ValueError):
    """A training or validation file is not valid; ``report`` holds every problem."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.summary())


def _name_and_path(arg: FileArg) -> tuple[str, Path]:
    if isinstance(arg, tuple):
        name, path = arg
        return str(name), Path(path)
    return Path(arg).name, Path(arg)


def iter_lines(arg: FileArg, problems: list[Problem]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for every well-formed JSON object line of a file.

    Malformed lines (bad encoding, invalid JSON, not an object, a truncated last line) are
    recorded in ``problems`` and skipped, so one pass finds every problem.
    """
    name, path = _name_and_path(arg)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        problems.append(Problem(name, None, None, f"cannot read file: {exc.strerror or exc}"))
        return
    with handle:
        yield from _parsed_lines(name, handle, problems)


def _raw_lines(handle) -> Iterator[tuple[int, bytes, bool, bool]]:
    """``(number, line without its newline, is_last, ended_with_newline)``, one at a time
    (the file is streamed, never held whole); a UTF-8 byte-order mark is dropped."""
    previous = None
    for number, line in enumerate(handle, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if previous is not None:
            yield number - 1, previous.rstrip(b"\n"), False, True
        previous = line
    if previous is not None:
        yield number, previous.rstrip(b"\n"), True, previous.endswith(b"\n")


def _parsed_lines(name: str, handle, problems: list[Problem]) -> Iterator[tuple[int, dict]]:
    any_text = False
    for number, raw, is_last, ends_with_newline in _raw_lines(handle):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        any_text = True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(
                    name,
                    number,
                    None,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8",
                )
            )
            continue
        duplicates: list[str] = []
        try:
            obj = json.loads(text, object_pairs_hook=partial(_object, duplicates=duplicates))
        except json.JSONDecodeError as exc:
            if is_last and not ends_with_newline:
                message = (
                    f"the last line is incomplete (column {exc.colno}: {exc.msg}); "
                    "was the file cut off while writing?"
                )
            else:
                message = f"invalid JSON at column {exc.colno}: {exc.msg}"
            problems.append(Problem(name, number, None, message))
            continue
        if not isinstance(obj, dict):
            problems.append(
                Problem(name, number, None, f"expected a JSON object, got {type(obj).__name__}")
            )
            continue
        for key in duplicates:
            problems.append(
                Problem(name, number, key, "duplicate key: the last value is used", "warning")
            )
        bad = _unpaired_surrogate(obj)
        if bad is not None:
            where, column = bad
            problems.append(
                Problem(
                    name,
                    number,
                    where,
                    f"unpaired surrogate escape at "
                    f"character {column + 1}: the text cannot be encoded as "
                    "UTF-8",
                )
            )
            continue
        yield number, obj
    if not any_text:
        problems.append(Problem(name, None, None, "file is empty"))


def _object(pairs: list[tuple[str, object]], *, duplicates: list[str]) -> dict:
    """``json.loads`` object hook: a dict, with repeated keys noted in ``duplicates``."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            duplicates.append(key)
        out[key] = value
    return out


def _unpaired_surrogate(value: object, where: str = "") -> tuple[str, int] | None:
    """(field, index) of the first string holding a lone surrogate (``"\\ud800"``), else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return where or "(key)", exc.start
        return None
    items = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else ())
    )
    for key, item in items:
        path = f"{where}.{key}" if where else str(key)
        found = _unpaired_surrogate(key, path) if isinstance(key, str) else None
        found = found or _unpaired_surrogate(item, path)
        if found:
            return found
    return None


def _check_example(name: str, number: int, obj: dict, problems: list[Problem]) -> dict | None:
    """Return ``{target: [labels...]}`` for a valid example, else record problems and None."""
    ok = True
    if "text" not in obj:
        problems.append(Problem(name, number, "text", "missing"))
        ok = False
    elif not isinstance(obj["text"], str):
        kind = type(obj["text"]).__name__
        problems.append(Problem(name, number, "text", f"must be a string, got {kind}"))
        ok = False
    elif not obj["text"].strip():
        problems.append(Problem(name, number, "text", "is empty"))
        ok = False
    if "labels" not in obj:
        problems.append(Problem(name, number, "labels", "missing"))
        return None
    labels = obj["labels"]
    if not isinstance(labels, dict):
        kind = type(labels).__name__
        problems.append(Problem(name, number, "labels", f"must be an object, got {kind}"))
        return None
    if not labels:
        problems.append(Problem(name, number, "labels", "has no target"))
        return None
    parsed: dict[str, list[str] | str] = {}
    for target, value in labels.items():
        where = f"labels.{target}"
        if isinstance(value, str):
            if not value.strip():
                problems.append(Problem(name, number, where, "label is an empty string"))
                ok = False
            parsed[target] = value
        elif isinstance(value, list):
            if not value:
                problems.append(Problem(name, number, where, "label list is empty"))
                ok = False
            elif not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(
                    Problem(name, number, where, "label list must hold non-empty strings only")
                )
                ok = False
            parsed[target] = list(value)
        else:
            kind = type(value).__name__
            problems.append(
                Problem(name, number, where, f"must be a string or a list of strings, got {kind}")
            )
            ok = False
    return parsed if ok else None


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def validate_training_files(
    train: FileArg | Sequence[FileArg],
    validation: FileArg | Sequence[FileArg] | None = None,
) -> ValidationReport:
    """Check Classifier Factory training (and validation) files; report every problem.

    Errors: unreadable/empty file, non-UTF-8 bytes, invalid JSON, a truncated last line, a line
    that is not an object, missing/empty/non-string ``text``, ``labels`` missing or not an
    object, label values that are not a string or a list of strings, a target that is a
    string on some lines and a list on others, examples missing a target other lines have, a
    target with fewer than two distinct labels, and validation labels never seen in training.
    Also errors: text that cannot be encoded (an unpaired surrogate escape such as ``\\ud800``).
    Warnings: the same text in training and validation (leakage that inflates scores), the
    same text with different labels in training (conflicting examples), a repeated JSON key.
    """
    report = ValidationReport()
    problems = report.problems
    train_files = _as_files(train)
    valid_files = _as_files(validation)

    # one small entry per distinct training text: a 64-bit digest of the normalised text ->
    # (32-bit digest of its labels, file index, line) packed in one int, where first seen
    first_seen: dict[int, int] = {}
    names: list[str] = []
    # target -> (file, line) where each shape (str/list) was first seen
    shapes: dict[str, dict[bool, tuple[str, int]]] = defaultdict(dict)
    # the set of targets a line has -> [lines with it, the first of them]
    target_sets: dict[frozenset[str], list] = {}
    for name, number, obj, parsed in _well_formed_examples(train_files, report):
        if not names or names[-1] != name:
            names.append(name)
        key = _digest(obj["text"].strip().lower())
        labels = _digest(json.dumps(parsed, sort_keys=True)) >> 32
        seen = _unpack(first_seen.setdefault(key, _pack(labels, len(names) - 1, number)))
        if seen[0] != labels:
            problems.append(
                Problem(
                    name,
                    number,
                    "labels",
                    f"same text as {names[seen[1]]} line {seen[2]} with other labels "
                    "(conflicting examples)",
                    "warning",
                )
            )
        entry = target_sets.setdefault(frozenset(parsed), [0, []])
        entry[0] += 1
        if len(entry[1]) < MAX_KEPT_PROBLEMS:
            entry[1].append((name, number))
        for target, value in parsed.items():
            info = report.targets.setdefault(target, TargetInfo(target))
            is_list = isinstance(value, list)
            first = shapes[target].setdefault(is_list, (name, number))
            if len(shapes[target]) > 1 and first == (name, number):
                other = shapes[target][not is_list]
                problems.append(
                    Problem(
                        name,
                        number,
                        f"labels.{target}",
                        f"is a {'list' if is_list else 'string'} here but a "
                        f"{'string' if is_list else 'list'} at {other[0]} line {other[1]}; "
                        "use one shape per target",
                    )
                )
            info.multi_label = info.multi_label or is_list
            info.label_counts.update(_as_list(value))

    all_targets = set(report.targets)
    missing = []
    for seen_targets, (count, lines) in target_sets.items():
        for target in sorted(all_targets - seen_targets):
            missing += [(name, number, target) for name, number in lines]
            if isinstance(problems, Problems):
                problems.dropped["error"] += count - len(lines)  # counted, not listed
    for name, number, target in sorted(missing, key=lambda m: (names.index(m[0]), m[1])):
        problems.append(
            Problem(name, number, f"labels.{target}", "missing (other examples have it)")
        )
    for info in report.targets.values():
        if len(info.label_counts) < 2:
            only = ", ".join(repr(x) for x in info.labels) or "none"
            problems.append(
                Problem(
                    _names(train_files),
                    None,
                    f"labels.{info.name}",
                    f"needs at least two distinct labels to learn from, found {only}",
                )
            )

    for name, number, obj, parsed in _well_formed_examples(valid_files, report):
        for target, value in parsed.items():
            info = report.targets.get(target)
            if info is None:
                problems.append(
                    Problem(name, number, f"labels.{target}", "target not in the training data")
                )
                continue
            unseen = [v for v in _as_list(value) if v not in info.label_counts]
            if unseen:
                problems.append(
                    Problem(
                        name,
                        number,
                        f"labels.{target}",
                        f"label {', '.join(map(repr, unseen))} never appears in training",
                    )
                )
        packed = first_seen.get(_digest(obj["text"].strip().lower()))
        if packed is not None:
            first = _unpack(packed)
            problems.append(
                Problem(
                    name,
                    number,
                    "text",
                    f"same text as {names[first[1]]} line {first[2]} (train/validation leakage)",
                    "warning",
                )
            )
    return report


def _digest(text: str) -> int:
    """A 64-bit digest (a collision among a million texts has odds of ~1 in 40 million)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def _pack(labels: int, file: int, line: int) -> int:
    return labels << 64 | file << 40 | line


def _unpack(packed: int) -> tuple[int, int, int]:
    return packed >> 64, packed >> 40 & 0xFFFFFF, packed & 0xFF_FFFF_FFFF


def _well_formed_examples(
    files: list[FileArg], report: ValidationReport
) -> Iterator[tuple[str, int, dict, dict]]:
    """``(file name, line number, object, labels)`` for every well-formed example in ``files``;
    problems go to ``report.problems``, and every line read counts in ``report.line_counts``."""
    for arg in files:
        name, _ = _name_and_path(arg)
        report.line_counts[name] = 0
        for number, obj in iter_lines(arg, report.problems):
            report.line_counts[name] += 1
            parsed = _check_example(name, number, obj, report.problems)
            if parsed is not None:
                yield name, number, obj, parsed


def _as_files(arg: FileArg | Sequence[FileArg] | None) -> list[FileArg]:
    if arg is None:
        return []
    if isinstance(arg, (str, os.PathLike, tuple)):
        return [arg]
    return list(arg)


def _names(files: Iterable[FileArg]) -> str:
    return ", ".join(_name_and_path(f)[0] for f in files)


def iter_examples(path: str | os.PathLike) -> Iterator[dict]:
    """The examples of a training file known to be valid, one at a time (streamed); lines
    that are not examples are skipped (use :func:`read_examples` to raise on them)."""
    name = Path(path).name
    problems: list[Problem] = Problems()
    for number, obj in iter_lines(path, problems):
        if _check_example(name, number, obj, problems) is not None:
            yield obj


def read_examples(path: str | os.PathLike) -> list[dict]:
    """Read a training file that is known to be valid; raise :class:`TrainingFileError` if not."""
    problems: list[Problem] = []
    name = Path(path).name
    rows = []
    for number, obj in iter_lines(path, problems):
        if _check_example(name, number, obj, problems) is not None:
            rows.append(obj)
    report = ValidationReport(problems=problems)
    report.raise_for_errors()  # warnings (e.g. a repeated key) do not stop reading
    return rows
