"""Export a fine-tuned model of the local Classifier Factory to a self-contained folder.

The folder runs without this project, the service or PyTorch: ``predict.py`` needs only
``onnxruntime``, ``tokenizers`` and ``numpy``. It reads utterances one per line on standard input
and writes one JSON object per line, ``{target: {label: score}}``, with the scores the service
returns (softmax per single-label target, blended with the votes of the nearest training texts
when the model was trained with the extras recipe; independent sigmoids per multi-label target).

- Encoder models become one ONNX graph (tokens -> encoder -> mean pooling -> heads -> scores,
  and, for an extras model, the votes: the training texts' vectors and labels are constants of
  the graph; a plain model's export holds no training text)
  plus ``tokenizer.json`` (truncation and padding configured in it); ``quantize=True`` stores
  the graph with int8 weights (ONNX Runtime's dynamic quantization).
- TF-IDF models are stored as their arrays (vocabularies, idf weights, coefficients) and
  ``predict.py`` recomputes scikit-learn's featurisation in numpy.

Command line::

    python -m helpers.export --data-dir artifacts/factory MODEL_ID OUT_DIR [--int8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .factory.job_states import NOT_SUCCEEDED

FORMAT = "exported-classifier/1"
MANIFEST = "labels.json"
MARKER = ".classifier-export"  # written by export_model: the model id and the files it wrote
DEFAULT_DATA_DIR = "artifacts/factory"


class ExportError(ValueError):
    """The model cannot be exported (unknown, unfinished, unsupported); the message says why."""


# -- finding the model ---------------------------------------------------------------------------


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    if data_dir is None:
        from .notebook import project_root

        path = Path(DEFAULT_DATA_DIR)
        path = (project_root() or Path.cwd()) / path
    else:
        path = Path(data_dir).expanduser().resolve()
    if not (path / "factory.sqlite3").is_file():
        raise ExportError(
            f"{path}: not a Classifier Factory data folder (no factory.sqlite3); "
            "pass the folder the service was started with (--data-dir)"
        )
    return path


def _field(row, name: str):
    """A column of a store row (typed rows have attributes; older stores returned dicts)."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


def find_model(model_id: str, data_dir: str | os.PathLike | None = None) -> tuple[dict, Path]:
    """The finished fine-tuned model ``model_id`` (id, job_id, root, path) and its folder,
    or a clear ExportError. ``model_id`` may also be the id of the job that trained it."""
    from .factory.store import Store

    folder = _resolve_data_dir(data_dir)
    try:
        store = Store(folder)
    except Exception as exc:  # e.g. a damaged database: the store's message says what to do
        raise ExportError(f"{folder}: cannot read the factory's state: {exc}") from None
    try:
        return _find(store, folder, model_id)
    finally:
        if hasattr(store, "close"):
            store.close()


def _find(store, folder: Path, model_id: str) -> tuple[dict, Path]:
    model = store.get_model(model_id)
    job = None
    if model is None:
        job = store.get_job(model_id)
        if job is None:  # an ft id whose job has not finished yet ends with the job id's prefix
            prefix = model_id.rsplit(":", 1)[-1]
            if model_id.startswith("ft:") and len(prefix) == 8:
                job = next(
                    (
                        j
                        for j in store.jobs_with_status(NOT_SUCCEEDED)
                        if _field(j, "id").startswith(prefix)
                    ),
                    None,
                )
        if job is None:
            known = [_field(m, "id") for m in store.list_models()]
            raise ExportError(
                f"unknown model {model_id!r} in {folder}; fine-tuned models there: "
                + (", ".join(known) if known else "none (train one first, lesson 3)")
            )
        status, job_id = _field(job, "status"), _field(job, "id")
        if status != "SUCCESS" or not _field(job, "fine_tuned_model"):
            raise ExportError(
                f"model {model_id!r} is not finished: its job {job_id} is {status}; "
                "export it once the job has status SUCCESS"
            )
        model = store.get_model(_field(job, "fine_tuned_model"))
        if model is None:
            raise ExportError(
                f"job {job_id} succeeded but its model "
                f"{_field(job, 'fine_tuned_model')!r} was deleted from {folder}"
            )
    model = {k: _field(model, k) for k in ("id", "job_id", "root", "path")}
    path = folder / model["path"]
    if not path.is_dir():
        raise ExportError(f"model {model['id']!r}: its folder {path} is missing")
    return model, path


# -- writing the folder --------------------------------------------------------------------------


def export_model(
    model_id: str,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    quantize: bool = False,
) -> Path:
    """Write the self-contained folder for ``model_id`` into ``out_dir``; return its path.

    ``data_dir`` is the service's data folder (lessons: ``{work_dir}/factory``; default
    ``artifacts/factory`` of this checkout). ``quantize=True`` stores int8 weights (encoder
    models only). An existing ``out_dir`` is replaced only if it holds exactly an earlier
    export (the ``.classifier-export`` marker lists every file in it); anything else is refused.
    """
    out = _writable_out_dir(Path(out_dir).expanduser())
    model, model_dir = find_model(model_id, data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out.parent))
    try:
        if (model_dir / "classifier.json").exists():
            manifest = _export_encoder(model_dir, tmp, quantize)
        else:
            if quantize:
                raise ExportError(
                    f"model {model['id']!r} is a TF-IDF model: int8 quantization "
                    "applies to encoder models only"
                )
            manifest = _export_tfidf(model_dir, tmp)
        manifest = {
            "format": FORMAT,
            "model": model["id"],
            "base_model": model["root"],
            "exported_at": int(time.time()),
            **manifest,
        }
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (tmp / "predict.py").write_text(
            PREDICT_ONNX if manifest["kind"] == "onnx" else PREDICT_TFIDF, encoding="utf-8"
        )
        (tmp / "README.md").write_text(_readme(manifest, tmp), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir()) + [MARKER]
        (tmp / MARKER).write_text(
            json.dumps({"model": model["id"], "files": files}, indent=1) + "\n", encoding="utf-8"
        )
        if out.exists():
            _writable_out_dir(out)  # checked again: it may have changed meanwhile
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _writable_out_dir(out: Path) -> Path:
    """``out``, absolute, when an export may write there: it does not exist, is an empty
    folder, or holds exactly an earlier export (its marker file lists every entry, all plain
    files). Anything else is refused with the reason; nothing is deleted through a link."""
    if out.is_symlink():
        raise ExportError(f"{out} is a symbolic link; give the real folder (nothing was changed)")
    out = out.absolute()
    if not out.exists():
        return out
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder; choose an empty folder")
    entries = {p.name: p for p in out.iterdir()}
    if not entries:
        return out
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        listed = set(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(
            f"{out} is not empty and is not an earlier export (no {MARKER} file written by "
            "an export); choose an empty folder — nothing was changed"
        ) from None
    strangers = sorted(
        name
        for name, path in entries.items()
        if name not in listed or path.is_symlink() or not path.is_file()
    )
    if strangers:
        raise ExportError(
            f"{out} holds an earlier export of {marker.get('model')!r} and also "
            f"{', '.join(strangers[:5])}, which the export did not write; move them or choose "
            "an empty folder — nothing was changed"
        )
    return out


def _remove_abandoned(folder: Path) -> None:
    """Temporary folders of exports whose process died (e.g. killed) before finishing."""
    from .factory.launcher import pid_alive

    for tmp in folder.glob(".export-*"):
        pid = tmp.name.split("-")[1]
        if tmp.is_dir() and not tmp.is_symlink() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _targets(meta_targets: list[dict]) -> list[dict]:
    return [
        {
            "name": t["name"],
            "labels": list(t["labels"]),
            "multi_label": bool(t["multi_label"]),
            "scores": "sigmoid" if t["multi_label"] else "softmax",
        }
        for t in meta_targets
    ]


def _export_encoder(model_dir: Path, out: Path, quantize: bool) -> dict:
    from torch import nn

    from .factory.trainers.encoder import EncoderPredictor, ModelFormatError, model_format
    from .factory.trainers.onnx_engine import PooledEncoder, eager_attention, export_onnx

    try:
        meta = model_format.read(model_dir)
    except ModelFormatError as exc:
        raise ExportError(str(exc)) from None
    predictor = EncoderPredictor.load(model_dir, precision="fp32", engine="torch")
    eager_attention(predictor.enc.model)  # plain ops: the traced graph takes any mask
    normalize = bool(meta.get("normalize", True))

    class Scores(nn.Module):
        """Token ids -> encoder -> mean pooling (-> L2) -> the model's scoring rule."""

        def __init__(self) -> None:
            super().__init__()
            self.pooled = PooledEncoder(predictor.enc.model, normalize)
            self.scoring = predictor.scoring  # heads -> probabilities (-> votes)

        def forward(self, input_ids, attention_mask):
            return self.scoring(self.pooled(input_ids, attention_mask))

    outputs = [f"scores_{i}" for i in range(len(predictor.targets))]
    fp32_path = out / "model.onnx"
    export_onnx(Scores(), str(fp32_path), outputs)
    if quantize:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        q_path = out / "model.int8.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs advice about pre-processing
        try:
            # one scale per output column, 7-bit weights (no overflow on CPUs without VNNI);
            # the feed-forward projections, heads and votes stay fp32 (_fp32_matmuls)
            quantize_dynamic(
                str(fp32_path),
                str(q_path),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                nodes_to_exclude=_fp32_matmuls(fp32_path),
            )
        finally:
            root.setLevel(level)
        os.replace(q_path, fp32_path)
    _write_tokenizer(model_dir, out, int(meta["max_length"]))
    targets = _targets(meta["targets"])
    votes = meta.get("votes")
    for i in (votes or {}).get("targets", []):
        targets[i]["scores"] = (
            f"softmax blended {1 - votes['weight']:g}/{votes['weight']:g} with the votes of "
            f"the {votes['k']} nearest of {votes['size']} training texts"
        )
    for target, name in zip(targets, outputs, strict=True):
        target["output"] = name
    return {
        "kind": "onnx",
        "weights": "int8" if quantize else "float32",
        "max_length": int(meta["max_length"]),
        "encoder": meta.get("encoder"),
        "pooling": "mean",
        "normalize": normalize,
        "targets": targets,
    }


def _fp32_matmuls(graph: Path) -> list[str]:
    """The matrix products that keep float32 weights under ``quantize=True``: both projections of
    each layer's feed-forward block, the heads and the votes' similarities; int8 weights go to
    the attention projections (query, key, value, output).

    The feed-forward block's input after GELU has the widest range of any product's input, so
    one int8 scale per call rounds it most coarsely. Keeping only its output projection in
    float32 (the previous choice: 5 of 1,812 top labels changed on the sample's validation split
    for four models without votes, against 11 with every product in int8) was not enough once
    the votes of the nearest training texts joined the scores: a similarity divided by the
    votes' temperature (0.05) magnifies small changes of the sentence vector. On validation,
    one utterance at a time, keeping both feed-forward projections in float32 halved the change
    of the sentence vector (mean cosine distance to float32 0.0014 vs 0.0033) and of the scores
    (mean largest change 0.0022 vs 0.0034), for 44 MB instead of 34 (float32: 90 MB; figures in
    ``benchmarks/README.md``). The heads and the votes are small and stay float32: int8 rounding
    cannot reorder the nearest neighbours.
    """
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    weights = {w.name for w in model.graph.initializer}
    with_weights = [
        n.name
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm") and weights.intersection(n.input)
    ]
    encoder = [n for n in with_weights if n.startswith("/pooled/")]
    names = [
        n
        for n in encoder
        if "/attention/" not in n and ("/output/dense/" in n or "/intermediate/dense/" in n)
    ]
    if not names:
        raise ExportError(f"{graph}: no feed-forward projection found (unexpected graph)")
    rest = [n for n in with_weights if not n.startswith("/pooled/")]
    # the quantizer rewrites a Gemm (a head) as "<name>_MatMul" + Add before quantizing it
    return names + rest + [f"{n}_MatMul" for n in rest if n.endswith("/Gemm")]


def _write_tokenizer(model_dir: Path, out: Path, max_length: int) -> None:
    from tokenizers import Tokenizer

    source = model_dir / "tokenizer.json"
    if not source.exists():
        raise ExportError(f"{model_dir}: no tokenizer.json (a fast tokenizer is required)")
    tokenizer = Tokenizer.from_file(str(source))
    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    pad_token = config.get("pad_token") or "[PAD]"
    if isinstance(pad_token, dict):
        pad_token = pad_token.get("content", "[PAD]")
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ExportError(f"{model_dir}: the pad token {pad_token!r} is not in the vocabulary")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest in a batch
    tokenizer.save(str(out / "tokenizer.json"))


def _export_tfidf(model_dir: Path, out: Path) -> dict:
    from .factory.trainers import tfidf

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("format") != tfidf.FORMAT:
        raise ExportError(
            f"{model_dir}: unknown model format {config.get('format')!r} "
            f"(export knows {tfidf.FORMAT} and encoder classifiers)"
        )
    names = list(tfidf.BLOCKS)
    files = [f"vocab_{n}.json" for n in names] + [f"idf_{n}.npy" for n in names]
    files += [f"head_{i}_{p}.npy" for i in range(len(config["targets"])) for p in ("W", "b")]
    for name in files:
        if not (model_dir / name).exists():
            raise ExportError(f"{model_dir}: {name} is missing (incomplete model folder)")
        shutil.copy2(model_dir / name, out / name)
    blocks = [
        {
            "name": n,
            "analyzer": tfidf.BLOCKS[n]["analyzer"],
            "ngram_range": list(tfidf.BLOCKS[n]["ngram_range"]),
            "lowercase": True,
            "sublinear_tf": True,
            "norm": "l2",
        }
        for n in names
    ]
    targets = _targets(config["targets"])
    for i, target in enumerate(targets):
        target["weights"], target["bias"] = f"head_{i}_W.npy", f"head_{i}_b.npy"
    return {"kind": "tfidf", "weights": "float32", "features": blocks, "targets": targets}


def _readme(manifest: dict, folder: Path) -> str:
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6
    targets = "\n".join(
        f"- `{t['name']}`: {len(t['labels'])} labels; scores: {t['scores']}"
        + (" (a label applies when its score >= 0.5)" if t["multi_label"] else "")
        for t in manifest["targets"]
    )
    if manifest["kind"] == "onnx":
        what = (
            f"`model.onnx`: the encoder and its heads as one ONNX graph "
            f"({manifest['weights']} weights"
            + (
                "; it also holds the training texts' sentence vectors and labels, whose nearest "
                "neighbours vote"
                if any("votes" in t["scores"] for t in manifest["targets"])
                else ""
            )
            + f"); `tokenizer.json`: the tokenizer (truncates to "
            f"{manifest['max_length']} tokens, pads to the longest text of a batch)."
        )
        deps = "onnxruntime tokenizers numpy"
        votes = any("votes" in t["scores"] for t in manifest["targets"])
        reveals = (
            "the sentence vector of every training utterance, with its label (the votes of the "
            "nearest): anyone with this folder can tell which training utterances are close to a "
            "text they choose, and vectors can leak part of their text. Do not share it where "
            "the training data is private."
            if votes
            else "no training utterance: only the fine-tuned weights and the tokenizer."
        )
    else:
        what = (
            "`vocab_*.json`, `idf_*.npy`: the TF-IDF vocabularies and idf weights (word "
            "1-2-grams, char_wb 2-5-grams); `head_*_W.npy`, `head_*_b.npy`: the linear heads."
        )
        deps = "numpy"
        reveals = (
            "the vocabularies: every word (and word pair) of the training data, and every "
            "character 2-5-gram seen at least twice, in `vocab_*.json`. Names, numbers or other "
            "private words in the training utterances can be read there: do not share the "
            "folder where the training data is private."
        )
    return f"""# Exported classifier `{manifest["model"]}`

Exported from the local Classifier Factory (base model `{manifest["base_model"]}`). This folder
is self-contained ({size:.1f} MB): it needs neither the service nor PyTorch.

## Files
- {what}
- `{MANIFEST}`: the targets, their labels in output order, and how this folder was made.
- `predict.py`: a small command-line classifier.
- `{MARKER}`: written by the export, listing these files (a new export may replace them).

## What it reveals about the training data
It holds {reveals}

## Targets
{targets}

## Use
```bash
pip install {deps}
echo "wake me up at seven" | python predict.py
```
`predict.py` reads utterances one per line on standard input and writes one JSON object per
line: for each target, every label's score, as the service's `/v1/classifications` returns them.
In Python, `from predict import predict; predict(["wake me up at seven"])` returns the same.
"""


PREDICT_ONNX = '''"""Classify utterances: one per line on stdin -> one JSON line each."""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
TOKENIZER = Tokenizer.from_file(str(HERE / "tokenizer.json"))  # truncates and pads
SESSION = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def predict(texts):
    """{target: {label: score}} for each text."""
    encodings = TOKENIZER.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    outputs = SESSION.run([t["output"] for t in META["targets"]],
                          {"input_ids": ids, "attention_mask": mask})
    return [{t["name"]: dict(zip(t["labels"], scores[i].tolist()))
             for t, scores in zip(META["targets"], outputs)} for i in range(len(ids))]


if __name__ == "__main__":
    # bytes that are not UTF-8 become U+FFFD: every input line gets its output line
    lines = [b.decode("utf-8", "replace").rstrip("\\r\\n") for b in sys.stdin.buffer]
    for start in range(0, len(lines), 64):
        for result in predict(lines[start:start + 64]):
            print(json.dumps(result, ensure_ascii=False))
'''

PREDICT_TFIDF = '''"""Classify utterances: one per line on stdin -> one JSON line each."""
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
BLOCKS = [(b, {t: i for i, t in enumerate(json.loads((HERE / f"vocab_{b['name']}.json").read_text(
    encoding="utf-8")))}, np.load(HERE / f"idf_{b['name']}.npy")) for b in META["features"]]
HEADS = [(np.load(HERE / t["weights"]), np.load(HERE / t["bias"])) for t in META["targets"]]
WORD, SPACES = re.compile(r"(?u)\\b\\w\\w+\\b"), re.compile(r"\\s\\s+")


def ngrams(text, analyzer, lo, hi):
    """scikit-learn's "word" and "char_wb" analyzers (lowercased)."""
    text = text.lower()
    if analyzer == "word":
        tokens = WORD.findall(text)
        return [" ".join(tokens[i:i + n]) for n in range(lo, hi + 1)
                for i in range(len(tokens) - n + 1)]
    grams = []
    for word in SPACES.sub(" ", text).split():
        word = f" {word} "
        for n in range(lo, hi + 1):
            grams += [word[i:i + n] for i in range(max(len(word) - n + 1, 1))]
            if len(word) <= n:  # a short word counts once
                break
    return grams


def features(text):
    """Sparse TF-IDF vector: sublinear tf x idf, each block L2-normalised, blocks side by side."""
    index, values, offset = [], [], 0
    for block, vocab, idf in BLOCKS:
        counts = Counter(vocab[g] for g in ngrams(text, block["analyzer"], *block["ngram_range"])
                         if g in vocab)
        j = np.array(list(counts), dtype=np.int64)
        v = (1.0 + np.log(np.array(list(counts.values()), dtype=np.float64))) * idf[j]
        norm = np.sqrt((v * v).sum())
        index.append(j + offset)
        values.append(v / norm if norm > 0 else v)
        offset += len(vocab)
    return np.concatenate(index), np.concatenate(values)


def predict(texts):
    """{target: {label: score}} for each text."""
    results = []
    for text in texts:
        j, v = features(text)
        result = {}
        for target, (w, b) in zip(META["targets"], HEADS):
            z = v @ w[j].astype(np.float64) + b
            p = 1 / (1 + np.exp(-z)) if target["multi_label"] else np.exp(z - z.max())
            result[target["name"]] = dict(zip(target["labels"], (p if target["multi_label"]
                                                                  else p / p.sum()).tolist()))
        results.append(result)
    return results


if __name__ == "__main__":
    for raw in sys.stdin.buffer:  # bytes that are not UTF-8 become U+FFFD
        line = raw.decode("utf-8", "replace").rstrip("\\r\\n")
        print(json.dumps(predict([line])[0], ensure_ascii=False))
'''


class OnnxClassifier:
    """An exported ONNX folder loaded with ONNX Runtime: what ``predict.py`` does, with texts
    sorted by length so each batch pads little (as the service does). ``threads`` sets ONNX
    Runtime's intra-op threads (default: its own choice)."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if self.meta.get("kind") != "onnx":
            raise ExportError(f"{folder}: not an ONNX export (kind {self.meta.get('kind')!r})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.pad_id = self.tokenizer.padding["pad_id"] if self.tokenizer.padding else 0
        self.tokenizer.no_padding()
        self.targets = self.meta["targets"]

    def predict(self, texts, batch_size: int = 64) -> list[dict[str, dict[str, float]]]:
        import numpy as np

        texts = list(texts)
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: list[dict] = [{} for _ in texts]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(ids[i]) for i in idx)
            batch = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, : len(ids[i])], mask[row, : len(ids[i])] = ids[i], 1
            outputs = self.session.run(
                [t["output"] for t in self.targets], {"input_ids": batch, "attention_mask": mask}
            )
            for target, scores in zip(self.targets, outputs, strict=True):
                for row, i in enumerate(idx):
                    results[i][target["name"]] = dict(
                        zip(target["labels"], scores[row].tolist(), strict=True)
                    )
        return results


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes of the files in ``folder`` (not recursive)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.export",
        description="Export a fine-tuned model of the local Classifier Factory to a folder that "
        "runs with onnxruntime, tokenizers and numpy only.",
    )
    parser.add_argument(
        "--data-dir", default=None, help=f"the service's data folder (default: {DEFAULT_DATA_DIR})"
    )
    parser.add_argument("model_id", help="fine-tuned model id (ft:classifier:...) or its job id")
    parser.add_argument(
        "out_dir", help="an empty or new folder to write (or one holding an earlier export)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="store int8 weights (ONNX Runtime dynamic quantization)"
    )
    args = parser.parse_args(argv)
    try:
        out = export_model(args.model_id, args.out_dir, data_dir=args.data_dir, quantize=args.int8)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6
    print(
        f"exported {args.model_id} to {out} ({size:.1f} MB); try: "
        f"echo 'hello' | python {out / 'predict.py'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
