"""The model format: the one place that writes and reads an encoder model's ``classifier.json``.

A model directory holds:

* ``model.safetensors`` — every encoder weight (keys ``encoder.<transformers name>``) and one
  linear head per target (``heads.<i>.weight`` [n_labels × hidden], ``heads.<i>.bias``), float32;
* ``config.json`` and tokenizer files — the encoder's, as ``transformers`` writes them;
* ``classifier.json`` — ``format``/``format_version``, ``base_model``, ``encoder``, ``targets``
  (name, labels in head order, ``multi_label``, ``head``), ``max_length``, ``pooling`` (``mean``
  over non-padding tokens) and ``normalize`` (L2) — the sentence vector the heads read —,
  ``votes`` (``null``, or the nearest-neighbour votes below), ``recipe`` (every knob, see
  :class:`.recipe.EncoderRecipe`) and ``training`` (timings and sizes);
* ``votes/`` — only with the extras recipe: ``vectors.npy`` (float16, one L2-normalised sentence
  vector per training text) and ``labels_<i>.npy`` (int32, each text's label index for target
  ``i``). These are derived from the training texts: a model with votes carries its training set
  in vector form. ``votes.sha256`` in ``classifier.json`` holds each file's digest, checked at
  every load, so a file changed after training is an error, not silently different scores;
* ``serving/`` — written on first load, not by training: the ONNX graph the CPU predictor runs;
  safe to delete, it is exported again.

Older versions: 3 called the votes ``memory`` (read as ``votes``); 2 could hold a TF-IDF blend,
which is no longer supported (:func:`read` says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ....fileio import sha256_file
from ..base import TargetSpec

FORMAT = "factory-encoder-classifier"
FORMAT_VERSION = 4  # 4: votes (was memory), no TF-IDF blend; 3: memory; 2: optional blend
FILE = "classifier.json"


class ModelFormatError(ValueError):
    """A model directory this version cannot read; the message names the file and the field."""


def write(out_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``classifier.json`` (``format`` and ``format_version`` are set here)."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    (Path(out_dir) / FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read(model_dir: Path) -> dict[str, Any]:
    """``classifier.json`` of ``model_dir``, checked, with older keys mapped to today's."""
    path = Path(model_dir) / FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: missing (not an encoder model directory)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFormatError(
            f"{path}: not an encoder classifier (format {found!r}, expected {FORMAT!r})"
        )
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is newer than this code reads "
            f"({FORMAT_VERSION}); update the project"
        )
    if meta.get("blend"):
        raise ModelFormatError(
            f"{path}: field 'blend': this model averages its encoder with a TF-IDF model, which "
            "this version no longer supports; retrain it"
        )
    if "votes" not in meta:
        meta["votes"] = meta.get("memory")
    meta.pop("memory", None)
    meta.pop("blend", None)
    for field in ("targets", "max_length"):
        if field not in meta:
            raise ModelFormatError(f"{path}: field {field!r} is missing")
    if meta.get("pooling", "mean") != "mean":
        raise ModelFormatError(f"{path}: field 'pooling': {meta['pooling']!r} (only 'mean')")
    return meta


def check_digests(folder: Path, digests: Mapping[str, str]) -> None:
    """Raise :class:`ModelFormatError` naming the first file of ``folder`` whose content is not
    the one ``digests`` (name -> sha256, recorded at training) describes."""
    for name, expected in digests.items():
        path = Path(folder) / name
        if sha256_file(path) != expected:
            raise ModelFormatError(
                f"{path}: its content is not the one classifier.json recorded at training "
                "(sha256 differs: changed after training); restore the file or train the model "
                "again"
            )


def targets(meta: dict[str, Any]) -> list[TargetSpec]:
    """The model's targets, labels in head order."""
    return [
        TargetSpec(t["name"], list(t["labels"]), bool(t["multi_label"])) for t in meta["targets"]
    ]
