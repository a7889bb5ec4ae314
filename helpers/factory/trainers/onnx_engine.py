"""The encoder's sentence vectors through ONNX Runtime: how fine-tuned encoders predict on a CPU.

On the CPU, in float32, :class:`~.encoder.EncoderPredictor` runs its transformer through ONNX
Runtime when ``onnxruntime`` is installed (engine ``auto``, the default; ``FACTORY_ENCODER_ENGINE``
or ``engine=`` picks ``onnx`` or ``torch``). Same scores: the graph is the model's own float32
weights, and the pooled vectors agree with PyTorch's within ~1e-6 (tested to 1e-5). Faster where
PyTorch's per-operation overhead dominates: one utterance took ~3.5 ms instead of ~10 ms on a
2-core AVX2 CPU; batches of 64 about the same (large matrix products, where both libraries'
kernels are equally fast). The heads, the blend and everything after pooling stay in PyTorch;
PyTorch's copy of the transformer's weights is freed once the session holds them (~75 MB less
per loaded MiniLM model).

The graph (token ids -> transformer -> mean pooling -> L2 normalisation) is exported once per
model folder (about 1.5 s for MiniLM) into ``serving/encoder-<size>-<mtime>.onnx``, named after
the weights file it was made from (written to a temporary name, then renamed, so concurrent
loaders never read half a file), with its sha256 beside it (``.sha256``): a graph whose content
no longer matches (altered or damaged after its export) is logged and exported again, never
served. For a read-only folder the graph is kept in memory.
``helpers.export`` wraps the same module with the heads for its self-contained folders.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...fileio import sha256_file
from .encoder.network import mean_pool

try:  # imported before any export, not inside torch.onnx.export (tests/service/test_export.py)
    import onnx  # noqa: F401
except ImportError:  # exporting then fails, and engine "auto" falls back to PyTorch
    pass

log = logging.getLogger(__name__)

ENGINE_ENV = "FACTORY_ENCODER_ENGINE"
ENGINES = ("auto", "onnx", "torch")
CACHE_DIR = "serving"
CACHE_FILE = "encoder.onnx"
ONNX_OPSET = 17


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def requested_engine(engine: str | None) -> str:
    """The engine asked for: the argument, else ``FACTORY_ENCODER_ENGINE``, else ``auto``."""
    return (engine or os.environ.get(ENGINE_ENV) or "auto").lower()


def resolve_engine(engine: str | None, precision: str, device: torch.device) -> str:
    """``onnx`` or ``torch`` for a predictor: ``auto`` means ONNX Runtime for float32 on a CPU
    when it is installed; asking for ``onnx`` elsewhere is an error that says why."""
    name = requested_engine(engine)
    if name not in ENGINES:
        raise ValueError(f"unknown encoder engine {name!r}: choose one of {', '.join(ENGINES)}")
    fits = device.type == "cpu" and precision == "fp32"
    if name == "auto":
        return "onnx" if fits and onnxruntime_available() else "torch"
    if name == "onnx":
        if not fits:
            raise ValueError(
                f"the onnx engine runs float32 on the CPU only (asked for {precision} on "
                f"{device.type}); use engine 'torch'"
            )
        if not onnxruntime_available():
            raise ValueError(
                "the onnx engine needs the onnxruntime package: pip install onnxruntime"
            )
    return name


class PooledEncoder(nn.Module):
    """Token ids -> transformer -> mean pooling over real tokens (-> L2 normalisation)."""

    def __init__(self, model: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.model, self.normalize = model, normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        return mean_pool(hidden, attention_mask, self.normalize)


def export_onnx(module: nn.Module, target: str, outputs: list[str]) -> None:
    """Trace ``module(input_ids, attention_mask)`` into an ONNX graph with dynamic batch and
    length axes. The transformer must use eager attention (plain ops take any mask)."""
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    axes |= {name: {0: "batch"} for name in outputs}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(
            module.eval(),
            (ids, mask),
            target,
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )


def eager_attention(model: nn.Module) -> None:
    """Switch a transformers model to eager attention (same results, exportable masks)."""
    config = getattr(model, "config", None)
    if config is not None:
        config._attn_implementation = "eager"


def cached_graph(model_dir: Path) -> Path:
    """Where the graph of ``model_dir``'s current weights is cached (named after their size and
    modification time, so rewritten weights never meet a stale graph)."""
    st = (model_dir / "model.safetensors").stat()
    return model_dir / CACHE_DIR / f"encoder-{st.st_size}-{st.st_mtime_ns}.onnx"


def _stamp(graph: Path) -> Path:
    """Where the sha256 of ``graph``, written at its export, is kept."""
    return graph.with_suffix(".sha256")


def _intact(graph: Path) -> bool:
    """True when ``graph`` exists and its content is the one exported (its stamp's sha256)."""
    if not graph.is_file():
        return False
    try:
        recorded = _stamp(graph).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        recorded = ""
    if recorded and sha256_file(graph) == recorded:
        return True
    log.warning(
        "%s: %s; exporting it again",
        graph,
        "its content differs from its sha256 at export" if recorded else "no sha256 beside it",
    )
    return False


def _graph(model_dir: Path | None, model: nn.Module) -> str | bytes:
    """The cached graph's path, exporting it first when missing or altered; bytes when it cannot
    be cached."""
    eager_attention(model)
    module = PooledEncoder(model)
    if model_dir is not None:
        path = cached_graph(model_dir)
        try:
            if _intact(path):
                return str(path)
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".encoder-", suffix=".tmp")
            os.close(fd)
            try:
                export_onnx(module, tmp, ["pooled"])
                digest = sha256_file(Path(tmp))
                os.replace(tmp, path)
                # a concurrent loader may check between these two writes: it re-exports too
                _stamp(path).write_text(digest + "\n", encoding="ascii")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            for old in path.parent.glob("encoder-*"):  # graphs of earlier weights, their stamps
                if old not in (path, _stamp(path)):
                    old.unlink(missing_ok=True)
            return str(path)
        except OSError as exc:  # a read-only folder: keep the graph in memory
            log.info("cannot cache the ONNX graph in %s (%s); exporting into memory", path, exc)
    with tempfile.TemporaryDirectory(prefix="factory-onnx-") as tmp_dir:
        tmp_path = Path(tmp_dir) / CACHE_FILE
        export_onnx(module, str(tmp_path), ["pooled"])
        return tmp_path.read_bytes()


class OnnxPooled:
    """``(input_ids, attention_mask)`` int64 arrays -> pooled, L2-normalised float32 vectors."""

    def __init__(self, model: nn.Module, model_dir: Path | None, threads: int) -> None:
        import onnxruntime as ort

        graph = _graph(model_dir, model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between calls: the service's event loop shares these cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {
            "input_ids": input_ids.numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.numpy().astype(np.int64, copy=False),
        }
        (pooled,) = self.session.run(["pooled"], feeds)
        return torch.from_numpy(pooled)
