"""Fine-tune a pretrained sentence encoder with one classification head per target, on CPU.

The recipe ("cached-bottom, warm-started head") is built to beat naive end-to-end fine-tuning on a
2-core CPU in a fraction of its time:

1. **Tokenise once** (``max_length`` tokens, no padding) and run the frozen pretrained encoder
   once over the training (and validation) texts, sorted by length with dynamic padding. The
   output of the frozen bottom layers is cached per example; the pooled sentence embeddings
   (mean pooling + L2 normalisation, as in sentence-transformers) are kept for step 2.
2. **Warm-start every head** with a logistic regression fitted (full-batch L-BFGS, L2 strength
   ``1 / (WARM_START_C * n_train)``) on those frozen embeddings: softmax/cross-entropy for a
   single-label target, independent sigmoids/BCE for a multi-label one. Step 0 therefore already
   scores about as well as "frozen embeddings + logistic regression".
3. **Fine-tune** the top ``trainable_layers`` transformer layers and the heads end to end, with
   AdamW (``learning_rate`` for the encoder, ``learning_rate * head_lr_factor`` for the heads,
   ``weight_decay`` on weight matrices, not on biases/LayerNorm), a linear warm-up over
   ``warmup_fraction`` of the steps then linear decay to zero. Each step is one optimizer step on
   exactly ``batch_size`` examples drawn from epoch-shuffled, length-bucketed batches (chunks of
   ``batch_size * BUCKET_BATCHES`` shuffled examples sorted by length, cut into batches, batches
   shuffled), running only the cached-input top layers — the frozen bottom is never recomputed.
   Per-target losses are summed (each target weight 1).

The result is a pure encoder classifier (no blending with any other model). The model directory
holds ``model.safetensors`` (all encoder weights and the heads), the encoder's ``config.json``,
tokenizer files and ``classifier.json`` (targets, labels, max length, pooling, recipe). Loading
uses safetensors only — never pickle.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import (
    MULTI_LABEL_THRESHOLD,
    Example,
    ProgressCallback,
    StepReport,
    TargetSpec,
    TrainConfig,
)
from .models import DEFAULT_ENCODER, resolve_encoder, short_id

FORMAT = "factory-encoder-classifier"
FORMAT_VERSION = 1

DEFAULT_TRAINING_STEPS = 300
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_WEIGHT_DECAY = 0.01
DEFAULT_WARMUP_FRACTION = 0.1

MAX_LENGTH = 64
TRAINABLE_LAYERS = 2
HEAD_LR_FACTOR = 10.0
WARM_START_C = 10.0
BUCKET_BATCHES = 16
EVAL_FRACTION = 0.1
PREDICT_BATCH = 64
IGNORE = -100


def default_config(seed: int = 0) -> TrainConfig:
    """The recommended hyperparameters for this trainer."""
    return TrainConfig(
        training_steps=DEFAULT_TRAINING_STEPS,
        learning_rate=DEFAULT_LEARNING_RATE,
        weight_decay=DEFAULT_WEIGHT_DECAY,
        warmup_fraction=DEFAULT_WARMUP_FRACTION,
        seed=seed,
    )


@contextmanager
def _torch_settings(threads: int, deterministic: bool = True) -> Iterator[None]:
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def _num_threads() -> int:
    # INTENT_TORCH_THREADS: set by helpers.batch to a point's share of the cores
    if threads := os.environ.get("INTENT_TORCH_THREADS", "").strip():
        return max(1, int(threads))
    return max(1, min(2, os.cpu_count() or 1))


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _new_encoder(config) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def _pretrained_encoder(path: Path) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(path), add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(str(path))


class _Encoder(nn.Module):
    """A BERT-style encoder split into a frozen bottom and a trainable top, plus mean pooling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layer

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        if bool(attention_mask.all()):
            return None
        try:
            from transformers.masking_utils import create_bidirectional_mask

            return create_bidirectional_mask(
                config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask
            )
        except ImportError:  # older transformers: an additive 4-d mask
            ext = attention_mask[:, None, None, :].to(hidden.dtype)
            return (1.0 - ext) * torch.finfo(hidden.dtype).min

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_layers: int):
        hidden = self.model.embeddings(input_ids=input_ids)
        return self.run_layers(hidden, attention_mask, 0, n_layers)

    def run_layers(self, hidden, attention_mask, start: int, stop: int) -> torch.Tensor:
        if stop <= start:
            return hidden
        mask = self._mask(hidden, attention_mask)
        for layer in self.layers[start:stop]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * m).sum(dim=1)
        pooled = summed / m.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bottom(input_ids, attention_mask, len(self.layers))
        return self.pool(hidden, attention_mask)


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[j, : len(s)] = 1
    return ids, mask


def _pad_hidden(cache: list[torch.Tensor], idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(cache[i].shape[0] for i in idx)
    dim = cache[idx[0]].shape[1]
    hidden = torch.zeros((len(idx), width, dim), dtype=cache[idx[0]].dtype)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for j, i in enumerate(idx):
        n = cache[i].shape[0]
        hidden[j, :n] = cache[i]
        mask[j, :n] = 1
    return hidden, mask


class _Targets:
    """Label encoding and losses for the targets of one model."""

    def __init__(self, targets: Sequence[TargetSpec]) -> None:
        self.specs = list(targets)
        self.index = [{label: i for i, label in enumerate(t.labels)} for t in self.specs]

    def encode(self, examples: Sequence[Example]) -> list[torch.Tensor]:
        out = []
        for t, index in zip(self.specs, self.index, strict=True):
            if t.multi_label:
                y = torch.zeros((len(examples), len(t.labels)), dtype=torch.float32)
                for r, ex in enumerate(examples):
                    value = ex.labels[t.name]
                    for label in [value] if isinstance(value, str) else value:
                        if label in index:  # a validation label unseen in training is ignored
                            y[r, index[label]] = 1.0
            else:  # an unseen validation label counts as an error and is left out of the loss
                y = torch.tensor([index.get(ex.labels[t.name], IGNORE) for ex in examples],
                                 dtype=torch.long)
            out.append(y)
        return out

    def losses(self, logits: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
        total = logits[0].new_zeros(())
        for t, z, y in zip(self.specs, logits, ys, strict=True):
            if t.multi_label:  # independent sigmoids: BCE summed over labels, mean over examples
                loss = F.binary_cross_entropy_with_logits(z, y, reduction="sum") / z.shape[0]
            else:
                loss = F.cross_entropy(z, y, ignore_index=IGNORE) if bool((y != IGNORE).any()) \
                    else z.sum() * 0.0
            total = total + loss
        return total

    def correct(self, logits: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> list[int]:
        counts = []
        for t, z, y in zip(self.specs, logits, ys, strict=True):
            if t.multi_label:
                pred = torch.sigmoid(z) >= MULTI_LABEL_THRESHOLD
                counts.append(int((pred == y.bool()).all(dim=1).sum()))
            else:
                counts.append(int((z.argmax(dim=1) == y).sum()))
        return counts


def _fit_head(x: torch.Tensor, y: torch.Tensor, multi_label: bool, n_out: int) -> tuple:
    """Logistic regression on frozen embeddings (L-BFGS, L2), used to warm-start one head."""
    x64 = x.double()
    w = torch.zeros((n_out, x.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((n_out,), dtype=torch.float64, requires_grad=True)
    lam = 1.0 / (WARM_START_C * x.shape[0])
    yy = y.double() if multi_label else y
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=300, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-7, tolerance_change=1e-10,
    )

    def closure():
        opt.zero_grad()
        z = x64 @ w.T + b
        if multi_label:
            loss = F.binary_cross_entropy_with_logits(z, yy, reduction="sum") / z.shape[0]
        else:
            loss = F.cross_entropy(z, yy)
        loss = loss + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float(), b.detach().float()


def _batches(lengths: np.ndarray, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """``steps`` batches of exactly ``batch_size`` indices: epoch-shuffled and length-bucketed.

    A stream of random permutations (one per epoch) is cut into chunks of ``BUCKET_BATCHES``
    batches; each chunk is sorted by length (little padding), cut into batches, and the batches
    of the chunk are shuffled.
    """
    rng = np.random.default_rng(seed)
    n = len(lengths)
    stream = np.empty(0, dtype=np.int64)
    produced = 0
    while produced < steps:
        n_batches = min(BUCKET_BATCHES, steps - produced)
        need = n_batches * batch_size
        while len(stream) < need:
            stream = np.concatenate([stream, rng.permutation(n)])
        chunk, stream = stream[:need], stream[need:]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches = [chunk[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
        for k in rng.permutation(n_batches):
            yield batches[k]
        produced += n_batches


class EncoderTrainer:
    """A pretrained sentence encoder fine-tuned with one classification head per target.

    See the module docstring for the recipe. ``training_steps`` counts AdamW steps on exactly
    :attr:`batch_size` examples; ``learning_rate`` is the encoder's AdamW rate (heads use
    ``learning_rate * head_lr_factor``); ``weight_decay`` and ``warmup_fraction`` are honoured.
    """

    batch_size: int = 32

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        *,
        max_length: int = MAX_LENGTH,
        trainable_layers: int = TRAINABLE_LAYERS,
        head_lr_factor: float = HEAD_LR_FACTOR,
        warm_start: bool = True,
        batch_size: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.base_model = short_id(model_name)
        self.description = (
            f"{model_name.rsplit('/', 1)[-1]} sentence encoder fine-tuned on CPU with one "
            f"linear head per target (top {trainable_layers} layers trained on cached bottom "
            "layers, heads warm-started by logistic regression)"
        )
        self.max_length = max_length
        self.trainable_layers = trainable_layers
        self.head_lr_factor = head_lr_factor
        self.warm_start = warm_start
        if batch_size is not None:
            self.batch_size = batch_size

    # -- protocol -------------------------------------------------------------------------

    def availability(self) -> tuple[bool, str]:
        if resolve_encoder(self.model_name) is None:
            return False, f"the encoder {self.model_name} is not available offline on this machine"
        return True, ""

    def expected_seconds(self, n_train: int, config: TrainConfig) -> int:
        # measured on 2 idle cores: ~4 s start-up, 2.5-3 ms per example for the frozen pass and
        # the warm start, 0.07-0.13 s per step with two trainable layers (short utterances)
        per_step = 0.03 + 0.035 * min(self.trainable_layers, 6)
        return int(math.ceil(4 + 0.003 * n_train + per_step * config.training_steps))

    def train(
        self,
        train: Sequence[Example],
        valid: Sequence[Example] | None,
        targets: Sequence[TargetSpec],
        config: TrainConfig,
        out_dir: Path,
        on_step: ProgressCallback,
    ) -> None:
        if not train:
            raise ValueError("no training examples")
        if not targets:
            raise ValueError("no targets")
        path = resolve_encoder(self.model_name)
        if path is None:
            raise RuntimeError(self.availability()[1])
        with _torch_settings(_num_threads()):
            self._train(path, list(train), list(valid or []), list(targets), config,
                        Path(out_dir), on_step)

    def load(self, model_dir: Path) -> EncoderPredictor:
        return EncoderPredictor.load(Path(model_dir))

    # -- training ----------------------------------------------------------------------------

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def _frozen_pass(self, enc: _Encoder, ids: list[list[int]], pad_id: int, n_bottom: int):
        """Cache the bottom layers' output per example; return it and the frozen embeddings."""
        n_layers = len(enc.layers)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        cache: list[torch.Tensor | None] = [None] * len(ids)
        pooled = torch.zeros((len(ids), enc.model.config.hidden_size))
        with torch.inference_mode():
            for s in range(0, len(order), 128):
                idx = order[s : s + 128]
                input_ids, mask = _pad([ids[i] for i in idx], pad_id)
                hidden = enc.bottom(input_ids, mask, n_bottom)
                for j, i in enumerate(idx):
                    cache[i] = hidden[j, : len(ids[i])].clone()
                if self.warm_start:
                    top = enc.run_layers(hidden, mask, n_bottom, n_layers)
                    pooled[idx] = enc.pool(top, mask)
        return cache, pooled

    def _train(
        self,
        path: Path,
        train: list[Example],
        valid: list[Example],
        targets: list[TargetSpec],
        config: TrainConfig,
        out_dir: Path,
        on_step: ProgressCallback,
    ) -> None:
        t0 = time.perf_counter()
        self._seed(config.seed)
        tokenizer = _load_tokenizer(path)
        enc = _Encoder(_pretrained_encoder(path))
        enc.eval()
        n_layers = len(enc.layers)
        n_top = max(1, min(self.trainable_layers, n_layers))
        n_bottom = n_layers - n_top
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        for p in enc.parameters():
            p.requires_grad_(False)

        def tokenize(examples: list[Example]) -> list[list[int]]:
            if not examples:
                return []
            return tokenizer(
                [ex.text for ex in examples], truncation=True, max_length=self.max_length
            )["input_ids"]

        tspec = _Targets(targets)
        train_ids, valid_ids = tokenize(train), tokenize(valid)
        ys_train, ys_valid = tspec.encode(train), tspec.encode(valid) if valid else []
        train_cache, train_emb = self._frozen_pass(enc, train_ids, pad_id, n_bottom)
        valid_cache = self._frozen_pass(enc, valid_ids, pad_id, n_bottom)[0] if valid else []
        t_frozen = time.perf_counter() - t0

        hidden_size = enc.model.config.hidden_size
        heads = nn.ModuleList(nn.Linear(hidden_size, len(t.labels)) for t in targets)
        if self.warm_start:
            with torch.no_grad():
                for head, t, y in zip(heads, targets, ys_train, strict=True):
                    w, b = _fit_head(train_emb, y, t.multi_label, len(t.labels))
                    head.weight.copy_(w)
                    head.bias.copy_(b)
        t_prep = time.perf_counter() - t0

        top = enc.layers[n_bottom:]
        for p in top.parameters():
            p.requires_grad_(True)
        decay, no_decay = [], []
        for name, p in top.named_parameters():
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        head_lr = config.learning_rate * self.head_lr_factor
        groups = [
            {"params": decay, "lr": config.learning_rate, "weight_decay": config.weight_decay},
            {"params": no_decay, "lr": config.learning_rate, "weight_decay": 0.0},
            {"params": [h.weight for h in heads], "lr": head_lr,
             "weight_decay": config.weight_decay},
            {"params": [h.bias for h in heads], "lr": head_lr, "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=config.learning_rate)
        total = max(0, int(config.training_steps))
        warm = int(round(max(0.0, config.warmup_fraction) * total))

        def lr_factor(s: int) -> float:  # s = 0-based index of the step about to be taken
            if s < warm:
                return (s + 1) / warm
            return max(0.0, (total - s) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        eval_every = max(1, int(round(total * EVAL_FRACTION)))
        lengths = np.array([len(x) for x in train_ids], dtype=np.int64)

        def forward_top(hidden: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
            out = enc.run_layers(hidden, mask, n_bottom, n_layers)
            pooled = enc.pool(out, mask)
            return [head(pooled) for head in heads]

        def evaluate() -> tuple[float, float]:
            enc.eval()
            loss_sum, correct, n = 0.0, np.zeros(len(targets)), len(valid)
            order = sorted(range(n), key=lambda i: valid_cache[i].shape[0])
            with torch.no_grad():
                for s in range(0, n, 128):
                    idx = order[s : s + 128]
                    hidden, mask = _pad_hidden(valid_cache, idx)
                    logits = forward_top(hidden, mask)
                    ys = [y[idx] for y in ys_valid]
                    loss_sum += float(tspec.losses(logits, ys)) * len(idx)
                    correct += np.array(tspec.correct(logits, ys))
            enc.train()
            return loss_sum / n, float(np.mean(correct / n))

        t1 = time.perf_counter()
        enc.train()
        last_loss = float("nan")
        for step, idx in enumerate(_batches(lengths, self.batch_size, total, config.seed), 1):
            idx_list = idx.tolist()
            hidden, mask = _pad_hidden(train_cache, idx_list)
            logits = forward_top(hidden, mask)
            loss = tspec.losses(logits, [y[idx] for y in ys_train])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lr_used = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            last_loss = float(loss.detach())
            report = StepReport(step=step, total_steps=total, train_loss=last_loss,
                                extra={"lr": lr_used})
            if valid and (step % eval_every == 0 or step == total):
                report.valid_loss, report.valid_accuracy = evaluate()
            on_step(report)
        enc.eval()
        t_train = time.perf_counter() - t1

        self._save(out_dir, enc, heads, tokenizer, targets, config, n_top, {
            "prepare_seconds": round(t_prep, 3),
            "frozen_pass_seconds": round(t_frozen, 3),
            "steps_seconds": round(t_train, 3),
            "n_train": len(train),
            "n_valid": len(valid),
            "final_train_loss": last_loss,
        })

    def _save(self, out_dir, enc, heads, tokenizer, targets, config, n_top, stats) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        state = {f"encoder.{k}": v.detach().contiguous() for k, v in enc.model.state_dict().items()}
        for i, head in enumerate(heads):
            state[f"heads.{i}.weight"] = head.weight.detach().contiguous()
            state[f"heads.{i}.bias"] = head.bias.detach().contiguous()
        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": FORMAT})
        enc.model.config.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "trainer": "encoder",
            "base_model": self.base_model,
            "encoder": self.model_name,
            "targets": [
                {"name": t.name, "labels": list(t.labels), "multi_label": t.multi_label,
                 "head": f"heads.{i}"}
                for i, t in enumerate(targets)
            ],
            "multi_label_threshold": MULTI_LABEL_THRESHOLD,
            "max_length": self.max_length,
            "pooling": "mean",
            "normalize": True,
            "blend": None,
            "recipe": {
                "name": "cached-bottom-warm-start",
                "batch_size": self.batch_size,
                "training_steps": config.training_steps,
                "learning_rate": config.learning_rate,
                "head_learning_rate": config.learning_rate * self.head_lr_factor,
                "head_lr_factor": self.head_lr_factor,
                "weight_decay": config.weight_decay,
                "warmup_fraction": config.warmup_fraction,
                "schedule": "linear warm-up, linear decay to 0",
                "seed": config.seed,
                "trainable_layers": n_top,
                "frozen": "embeddings and bottom layers (outputs cached)",
                "warm_start": (f"logistic regression on frozen embeddings, C={WARM_START_C}"
                               if self.warm_start else None),
                "batching": f"epoch-shuffled, length-bucketed ({BUCKET_BATCHES} batches/chunk)",
            },
            "training": stats,
        }
        (out_dir / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")


def bf16_is_fast() -> bool:
    """True when the CPU has native bfloat16 matrix support (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def _resolve_precision(precision: str | None) -> str:
    precision = (precision or os.environ.get("FACTORY_ENCODER_PRECISION") or "auto").lower()
    if precision not in {"auto", "fp32", "bf16"}:
        raise ValueError(f"unknown precision {precision!r} (auto, fp32 or bf16)")
    if precision == "auto":
        return "bf16" if bf16_is_fast() else "fp32"
    return precision


class EncoderPredictor:
    """A loaded encoder classifier; ``predict`` is thread-safe (one forward pass at a time).

    Inference pads each batch of ``batch_size`` length-sorted texts to its longest text. With
    ``precision="auto"`` (the default; env ``FACTORY_ENCODER_PRECISION`` overrides) the encoder's
    transformer layers run in bfloat16 when the CPU has native bfloat16 support (weights cast
    once at load; about 3x faster on AVX512-BF16 CPUs; pooling and heads stay float32);
    otherwise float32.
    Scores are deterministic for a given precision; bf16 scores differ from fp32 by ~1e-3.
    """

    def __init__(self, enc: _Encoder, heads: nn.ModuleList, tokenizer, targets: list[TargetSpec],
                 max_length: int, batch_size: int = PREDICT_BATCH,
                 precision: str | None = None) -> None:
        self.precision = _resolve_precision(precision)
        self.enc = enc.eval()
        if self.precision == "bf16":
            self.enc.to(torch.bfloat16)  # cast once: cheaper than autocast on every call
        self.heads = heads.eval()
        self.tokenizer = tokenizer
        self.targets = targets
        self.max_length = max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, precision: str | None = None) -> EncoderPredictor:
        from safetensors.torch import load_file
        from transformers import AutoConfig

        meta = json.loads((model_dir / "classifier.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{model_dir} is not an encoder classifier")
        state = load_file(str(model_dir / "model.safetensors"))
        config = AutoConfig.from_pretrained(str(model_dir))
        enc = _Encoder(_new_encoder(config))
        enc.model.load_state_dict(
            {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")},
            strict=True,
        )
        targets = [TargetSpec(t["name"], list(t["labels"]), bool(t["multi_label"]))
                   for t in meta["targets"]]
        heads = nn.ModuleList()
        for t in meta["targets"]:
            w, b = state[f"{t['head']}.weight"], state[f"{t['head']}.bias"]
            head = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                head.weight.copy_(w)
                head.bias.copy_(b)
            heads.append(head)
        return cls(enc, heads, _load_tokenizer(model_dir), targets, int(meta["max_length"]),
                   precision=precision)

    def predict(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        texts = list(texts)
        if not texts:
            return []
        with self._lock, torch.inference_mode():
            ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            scores: list[list[np.ndarray]] = [[] for _ in self.targets]
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                input_ids, mask = _pad([ids[i] for i in idx], self.pad_id)
                hidden = self.enc.bottom(input_ids, mask, len(self.enc.layers))
                pooled = self.enc.pool(hidden.float(), mask)
                for k, (t, head) in enumerate(zip(self.targets, self.heads, strict=True)):
                    z = head(pooled)
                    p = torch.sigmoid(z) if t.multi_label else torch.softmax(z, dim=-1)
                    scores[k].append(p.numpy())
        results: list[dict[str, dict[str, float]]] = [{} for _ in texts]
        for k, t in enumerate(self.targets):
            mat = np.concatenate(scores[k]).astype(np.float64)
            for row, i in enumerate(order):
                results[i][t.name] = dict(zip(t.labels, mat[row].tolist(), strict=True))
        return results
