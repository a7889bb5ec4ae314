"""The predictor: a saved encoder model, loaded to score and embed texts."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base import TargetSpec
from ..device import select_device
from . import model_format
from .network import Encoder, load_tokenizer, new_encoder, pad
from .scoring import ScoringRule
from .votes import NearestNeighbourVotes

log = logging.getLogger(__name__)

PREDICT_BATCH = 64


def bf16_is_fast() -> bool:
    """True when the CPU has native bfloat16 matrix support (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def resolve_precision(precision: str | None) -> str:
    precision = (precision or os.environ.get("FACTORY_ENCODER_PRECISION") or "fp32").lower()
    if precision not in {"fp32", "bf16"}:
        raise ValueError(f"unknown precision {precision!r} (fp32 or bf16)")
    return precision


class EncoderPredictor:
    """A loaded encoder classifier; ``predict`` and ``embed`` are thread-safe (one at a time).

    Inference pads each batch of ``batch_size`` length-sorted texts to its longest text. On the
    CPU it runs in float32 by default, so scores are the same whatever the CPU's vector
    extensions; ``precision="bf16"`` (or env ``FACTORY_ENCODER_PRECISION=bf16``) casts the
    transformer layers to bfloat16 once at load — about 2.3-2.7x the throughput on CPUs with
    native bfloat16 (AVX512-BF16/AMX), slower elsewhere, scores differ by ~1e-3. On CUDA it runs
    in float32 too (however it was trained), so served scores match an fp32 ONNX export within
    1e-4 on every device (``device.py``). Pooling, heads and votes stay float32.
    Loaded with :meth:`load`, a float32 CPU model runs its transformer through ONNX Runtime
    (``engine``; :mod:`.onnx_engine`): the same scores within ~1e-6, a single utterance ~3x faster;
    PyTorch's copy of the transformer's weights is then freed (``enc`` keeps the config only).
    """

    def __init__(
        self,
        enc: Encoder,
        heads: nn.ModuleList,
        tokenizer,
        targets: list[TargetSpec],
        max_length: int,
        batch_size: int = PREDICT_BATCH,
        precision: str | None = None,
        device: str | None = "cpu",
        engine: str | None = "torch",
        model_dir: Path | None = None,
        votes: NearestNeighbourVotes | None = None,
    ) -> None:
        from ..onnx_engine import OnnxPooled, requested_engine, resolve_engine

        self.device = select_device(device)
        self.precision = resolve_precision(precision)
        self.enc = enc.eval().to(self.device)
        if self.precision == "bf16" and self.device.type == "cpu":
            self.enc.to(torch.bfloat16)  # cast once: cheaper than autocast on every call
        self.engine = resolve_engine(engine, self.precision, self.device)
        self._onnx = None
        if self.engine == "onnx":
            try:
                self._onnx = OnnxPooled(self.enc.model, model_dir, torch.get_num_threads())
            except Exception as exc:
                if requested_engine(engine) == "onnx":
                    raise
                log.warning("ONNX Runtime cannot run %s (%s); using PyTorch", model_dir, exc)
                self.engine = "torch"
        if self._onnx is not None:
            # ONNX Runtime holds its own copy of the weights: free PyTorch's (~75 MB less per
            # MiniLM model, measured); the config (hidden size) stays
            self.enc.model.to("meta")
        self.heads = heads.eval().to(self.device)
        self.tokenizer = tokenizer
        self.targets = targets
        self.max_length = max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.votes = votes.eval().to(self.device) if votes is not None else None
        self.scoring = ScoringRule(self.heads, [t.multi_label for t in targets], self.votes)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: Path,
        precision: str | None = None,
        device: str | None = "cpu",
        engine: str | None = None,
    ) -> EncoderPredictor:
        """Load a model directory (tensors go to the CPU first: any saving device works).

        ``engine``: ``auto`` (default, or env ``FACTORY_ENCODER_ENGINE``) runs the transformer
        through ONNX Runtime for float32 on a CPU (see :mod:`.onnx_engine`), else PyTorch.
        """
        from safetensors.torch import load_file
        from transformers import AutoConfig

        model_dir = Path(model_dir)
        meta = model_format.read(model_dir)
        state = load_file(str(model_dir / "model.safetensors"), device="cpu")
        config = AutoConfig.from_pretrained(str(model_dir))
        enc = Encoder(new_encoder(config))
        enc.model.load_state_dict(
            {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")},
            strict=True,
        )
        targets = model_format.targets(meta)
        heads = nn.ModuleList()
        for t in meta["targets"]:
            w, b = state[f"{t['head']}.weight"], state[f"{t['head']}.bias"]
            head = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                head.weight.copy_(w)
                head.bias.copy_(b)
            heads.append(head)
        votes = None
        if meta.get("votes"):
            spec = meta["votes"]
            # models trained before the digests have none to check
            model_format.check_digests(model_dir / spec["path"], spec.get("sha256") or {})
            votes = NearestNeighbourVotes.load(model_dir / spec["path"], spec, targets)
        return cls(
            enc,
            heads,
            load_tokenizer(model_dir),
            targets,
            int(meta["max_length"]),
            precision=precision,
            device=device,
            engine=engine,
            model_dir=model_dir,
            votes=votes,
        )

    def _pooled(self, texts: list[str]) -> tuple[list[int], list[torch.Tensor], int]:
        """Length order, the pooled, L2-normalised sentence vectors per batch (float32) and the
        number of tokens read (after truncation)."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = []
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            input_ids, mask = pad([ids[i] for i in idx], self.pad_id)
            if self._onnx is not None:
                out.append(self._onnx(input_ids, mask))
                continue
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            hidden = self.enc.bottom(input_ids, mask, len(self.enc.layers))  # float32 (device.py)
            out.append(self.enc.pool(hidden, mask))
        return order, out, sum(len(x) for x in ids)

    def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """:meth:`embed` and the number of tokens the encoder read."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.enc.hidden_size), dtype=np.float32), 0
        with self._lock, torch.inference_mode():
            order, pooled, n_tokens = self._pooled(texts)
            mat = torch.cat(pooled).cpu().numpy().astype(np.float32)
        result = np.empty_like(mat)
        result[order] = mat
        return result, n_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The sentence vectors the heads read (mean pooling, L2-normalised), float32 [n × dim]."""
        return self.embed_counted(texts)[0]

    def predict(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        texts = list(texts)
        if not texts:
            return []
        with self._lock, torch.inference_mode():
            order, pooled, _ = self._pooled(texts)
            scores: list[list[np.ndarray]] = [[] for _ in self.targets]
            for batch in pooled:
                for k, p in enumerate(self.scoring(batch)):
                    scores[k].append(p.cpu().numpy())
        mats = []
        for k in range(len(self.targets)):
            mat = np.empty((len(texts), len(self.targets[k].labels)), dtype=np.float64)
            mat[order] = np.concatenate(scores[k]).astype(np.float64)
            mats.append(mat)
        results: list[dict[str, dict[str, float]]] = [{} for _ in texts]
        for k, t in enumerate(self.targets):
            for i in range(len(texts)):
                results[i][t.name] = dict(zip(t.labels, mats[k][i].tolist(), strict=True))
        return results
