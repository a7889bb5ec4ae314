"""The trainer: fine-tunes a pretrained sentence encoder with one linear head per target.

Steps (the package docstring tells the recipe in words): tokenise once and run the frozen
bottom layers once (:mod:`.frozen_cache`); warm-start the heads (:mod:`.warm_start`); train the
top layers and the heads with AdamW on length-bucketed batches (:mod:`.sampler`,
:mod:`.losses`); with the extras recipe, keep the training texts' vectors for the votes
(:mod:`.votes`); save (:mod:`.model_format`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ....fileio import sha256_file
from ... import planning
from ..base import (
    MULTI_LABEL_THRESHOLD,
    CancelCheck,
    DataCheck,
    Example,
    ProgressCallback,
    StepReport,
    TargetSpec,
    TrainConfig,
    never_cancelled,
)
from ..device import amp_dtype, autocast, grad_scaler, select_device
from ..models import DEFAULT_ENCODER, resolve_encoder, short_id
from . import model_format
from .frozen_cache import FROZEN_BATCH, FrozenCache
from .losses import IGNORE, LabelCodec, supervised_contrastive_loss
from .network import Encoder, load_tokenizer, pretrained_encoder, torch_settings
from .predictor import EncoderPredictor
from .recipe import DEFAULTS, PLAIN, EncoderRecipe
from .sampler import BUCKET_BATCHES, length_bucketed_batches, seed_everything
from .votes import RULE as VOTES_RULE
from .votes import VOTES_DIR, NearestNeighbourVotes
from .warm_start import fit_logistic_head

EVAL_FRACTION = 0.1
"""Validation runs every ``EVAL_FRACTION`` of the steps (and at the last step)."""


@dataclass
class Prepared:
    """Everything the optimisation loop needs, computed once before the first step."""

    tokenizer: Any  # a transformers tokenizer
    enc: Encoder
    n_bottom: int
    train: FrozenCache
    valid: FrozenCache | None
    ys_train: list[torch.Tensor]
    ys_valid: list[torch.Tensor]
    frozen_embeddings: torch.Tensor | None
    stats: dict[str, float] = field(default_factory=dict)


class EncoderTrainer:
    """A pretrained sentence encoder fine-tuned with one classification head per target.

    ``recipe`` holds every knob (:class:`.recipe.EncoderRecipe`; keyword arguments change single
    fields, e.g. ``EncoderTrainer(trainable_layers=2)``). ``training_steps`` counts AdamW steps on
    exactly ``recipe.batch_size`` examples; ``learning_rate`` is the top layer's rate;
    ``weight_decay`` and ``warmup_fraction`` are honoured. ``base_model`` is the id the service
    lists (default: the encoder's short id, plus ``-<recipe name>`` for a recipe other than
    the plain one).
    """

    defaults: TrainConfig = DEFAULTS

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        recipe: EncoderRecipe = PLAIN,
        *,
        base_model: str | None = None,
        device: str | None = "auto",
        **changes: Any,
    ) -> None:
        self.recipe = recipe.with_(**changes) if changes else recipe
        self.model_name = model_name
        suffix = "" if self.recipe.name == PLAIN.name else f"-{self.recipe.name}"
        self.base_model = base_model or short_id(model_name) + suffix
        self.batch_size = self.recipe.batch_size
        self.max_length = self.recipe.max_length
        self._device = select_device(device)
        self.device = self._device.type
        r = self.recipe
        extras = [
            "supervised contrastive term" if r.contrastive_weight else "",
            f"votes of the {r.votes_k} nearest training texts" if r.votes_weight else "",
        ]
        extra = "".join(f", {e}" for e in extras if e)
        self.description = (
            f"{model_name.rsplit('/', 1)[-1]} sentence encoder fine-tuned with one linear head "
            f"per target (recipe {r.name!r}: top {r.trainable_layers} layers trained, "
            f"cross-entropy, heads warm-started by logistic regression{extra})"
        )

    @property
    def max_context_length(self) -> int:
        return self.recipe.max_length

    # -- protocol -------------------------------------------------------------------------

    def availability(self) -> tuple[bool, str]:
        if resolve_encoder(self.model_name) is None:
            return False, f"the encoder {self.model_name} is not available offline on this machine"
        return True, ""

    def check_data(
        self,
        files: Sequence[tuple[str, Path]],
        sample: Sequence[str],
        n_texts: int,
        n_labels: int,
    ) -> DataCheck:
        """Nothing beyond the service's own checks: the encoder truncates long texts and its
        memory is bounded by the frozen cache's budget, not by the data."""
        return DataCheck()

    def expected_seconds(self, n_train: int, config: TrainConfig) -> int:
        # 2 idle CPU cores, short utterances: ~4 s start-up, ~2.5 ms per example for the frozen
        # pass and the warm start, ~0.035 s per trainable layer per step, the votes' pass
        # ~1.2 ms per example; a GPU is about 10x faster on the steps
        per_step = 0.03 + 0.035 * min(self.recipe.trainable_layers, 6)
        if self.device != "cpu":
            per_step /= 10
        votes = 0.0012 * n_train if self.recipe.votes_weight else 0.0
        return int(math.ceil(4 + 0.003 * n_train + votes + per_step * config.training_steps))

    def train(
        self,
        train: Sequence[Example],
        valid: Sequence[Example] | None,
        targets: Sequence[TargetSpec],
        config: TrainConfig,
        out_dir: Path,
        on_step: ProgressCallback,
        check_cancelled: CancelCheck = never_cancelled,
    ) -> None:
        if not train:
            raise ValueError("no training examples")
        if not targets:
            raise ValueError("no targets")
        path = resolve_encoder(self.model_name)
        if path is None:
            raise RuntimeError(self.availability()[1])
        train, valid, targets = list(train), list(valid or []), list(targets)
        out_dir = Path(out_dir)
        t0 = time.perf_counter()
        with torch_settings(self._device):
            seed_everything(config.seed)
            prep = self._prepare(path, train, valid, targets, check_cancelled)
            heads = self._new_heads(prep, targets)
            prep.stats["prepare_seconds"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            last_loss = self._fit(prep, heads, targets, config, on_step)
            prep.stats["steps_seconds"] = time.perf_counter() - t1
            t3 = time.perf_counter()
            votes = self._votes(prep, targets, check_cancelled)
            prep.stats["votes_seconds"] = time.perf_counter() - t3
        stats: dict[str, Any] = {k: round(v, 3) for k, v in prep.stats.items()}
        stats.update(
            n_train=len(train),
            n_valid=len(valid),
            final_train_loss=last_loss,
            device=self.device,
            frozen_cache=prep.train.mode,
            frozen_cache_mb=round(prep.train.nbytes() / 2**20, 1),
        )
        self._save(out_dir, prep, heads, targets, config, stats, votes)

    def load(self, model_dir: Path) -> EncoderPredictor:
        return EncoderPredictor.load(Path(model_dir), device=self.device)

    # -- training steps ----------------------------------------------------------------------

    def _prepare(
        self,
        path: Path,
        train: list[Example],
        valid: list[Example],
        targets: list[TargetSpec],
        check_cancelled: CancelCheck = never_cancelled,
    ) -> Prepared:
        """Tokenise, encode the labels and run the frozen pass (cache + warm-start embeddings)."""
        t0 = time.perf_counter()
        tokenizer = load_tokenizer(path)
        enc = Encoder(pretrained_encoder(path)).to(self._device).eval()
        for p in enc.parameters():
            p.requires_grad_(False)
        n_layers = len(enc.layers)
        n_bottom = n_layers - max(1, min(self.recipe.trainable_layers, n_layers))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

        def tokenize(examples: list[Example]) -> list[list[int]]:
            texts = [ex.text for ex in examples]
            return tokenizer(texts, truncation=True, max_length=self.recipe.max_length)["input_ids"]

        tspec = LabelCodec(targets)
        train_in = FrozenCache(enc, tokenize(train), pad_id, n_bottom, self._device)
        pooled = torch.zeros((len(train), enc.hidden_size)) if self.recipe.warm_start else None
        train_in.fill(pooled, check_cancelled)
        valid_in = None
        if valid:
            valid_in = FrozenCache(enc, tokenize(valid), pad_id, n_bottom, self._device)
            valid_in.fill(None, check_cancelled)
        return Prepared(
            tokenizer=tokenizer,
            enc=enc,
            n_bottom=n_bottom,
            train=train_in,
            valid=valid_in,
            ys_train=tspec.encode(train),
            ys_valid=tspec.encode(valid) if valid else [],
            frozen_embeddings=pooled,
            stats={"frozen_pass_seconds": time.perf_counter() - t0},
        )

    def _new_heads(self, prep: Prepared, targets: list[TargetSpec]) -> nn.ModuleList:
        """One linear head per target, warm-started by logistic regression when enabled."""
        hidden_size = prep.enc.hidden_size
        linears = [nn.Linear(hidden_size, len(t.labels)) for t in targets]
        heads = nn.ModuleList(linears)
        if prep.frozen_embeddings is not None:
            with torch.no_grad():
                for head, t, y in zip(linears, targets, prep.ys_train, strict=True):
                    w, b = fit_logistic_head(
                        prep.frozen_embeddings,
                        y,
                        t.multi_label,
                        len(t.labels),
                        self.recipe.warm_start_c,
                    )
                    head.weight.copy_(w)
                    head.bias.copy_(b)
        return heads.to(self._device)

    def _optimizer(self, prep: Prepared, heads: nn.ModuleList, config: TrainConfig):
        """AdamW with per-layer learning rates, and the warm-up/linear-decay schedule."""
        top = prep.enc.layers[prep.n_bottom :]
        groups = []
        for depth, layer in enumerate(reversed(top)):  # depth 0 = the last layer
            lr = config.learning_rate * self.recipe.layer_lr_decay**depth
            decay: list[nn.Parameter] = []
            no_decay: list[nn.Parameter] = []
            for name, p in layer.named_parameters():
                p.requires_grad_(True)
                (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
            groups += [
                {"params": decay, "lr": lr, "weight_decay": config.weight_decay},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0},
            ]
        head_lr = config.learning_rate * self.recipe.head_lr_factor
        groups += [
            {
                "params": [h.weight for h in heads],
                "lr": head_lr,
                "weight_decay": config.weight_decay,
            },
            {"params": [h.bias for h in heads], "lr": head_lr, "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=config.learning_rate)
        total = max(0, int(config.training_steps))
        warm = planning.warmup_steps(total, config.warmup_fraction)
        return opt, torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: planning.lr_factor(s, total, warm)
        )

    def _logits(
        self, prep: Prepared, heads: nn.ModuleList, inputs: FrozenCache, idx: Sequence[int]
    ) -> list[torch.Tensor]:
        return self._forward(prep, heads, inputs, idx)[0]

    def _forward(
        self, prep: Prepared, heads: nn.ModuleList, inputs: FrozenCache, idx: Sequence[int]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Logits of every head and the pooled sentence vectors of the examples ``idx``."""
        hidden, mask = inputs.batch(idx)
        with autocast(self._device):
            out = prep.enc.run_layers(hidden, mask, prep.n_bottom, len(prep.enc.layers))
        pooled = prep.enc.pool(out, mask)
        return [head(pooled) for head in heads], pooled

    def _evaluate(self, prep: Prepared, heads: nn.ModuleList, tspec: LabelCodec):
        """Validation loss and mean per-target accuracy (eval mode, no gradients)."""
        assert prep.valid is not None
        prep.enc.eval()
        n = len(prep.valid.ids)
        loss_sum, correct = 0.0, np.zeros(len(tspec.specs))
        order = np.argsort(prep.valid.lengths, kind="stable").tolist()
        with torch.no_grad():
            for s in range(0, n, FROZEN_BATCH):
                idx = order[s : s + FROZEN_BATCH]
                logits = self._logits(prep, heads, prep.valid, idx)
                ys = [y[idx].to(self._device) for y in prep.ys_valid]
                loss_sum += float(tspec.losses(logits, ys)) * len(idx)
                correct += np.array(tspec.correct(logits, ys))
        self._train_mode(prep)
        return loss_sum / n, float(np.mean(correct / n))

    def _train_mode(self, prep: Prepared) -> None:
        """Dropout on in the trainable layers only (the frozen bottom stays as cached)."""
        prep.enc.train()
        prep.enc.embeddings.eval()
        for layer in prep.enc.layers[: prep.n_bottom]:
            layer.eval()

    def _fit(
        self,
        prep: Prepared,
        heads: nn.ModuleList,
        targets: list[TargetSpec],
        config: TrainConfig,
        on_step: ProgressCallback,
    ) -> float:
        """The optimisation loop; returns the last training loss."""
        tspec = LabelCodec(targets)
        opt, sched = self._optimizer(prep, heads, config)
        scaler = grad_scaler(self._device)
        total = max(0, int(config.training_steps))
        eval_every = planning.every(total, EVAL_FRACTION)
        self._train_mode(prep)
        last_loss = float("nan")
        for step, idx in enumerate(
            length_bucketed_batches(prep.train.lengths, self.batch_size, total, config.seed), 1
        ):
            logits, pooled = self._forward(prep, heads, prep.train, idx.tolist())
            ys = [y[idx].to(self._device) for y in prep.ys_train]
            classification = tspec.losses(logits, ys, self.recipe.label_smoothing)
            contrastive = classification.new_zeros(())
            if self.recipe.contrastive_weight:
                for spec, y in zip(tspec.specs, ys, strict=True):
                    if not spec.multi_label:
                        contrastive = contrastive + supervised_contrastive_loss(
                            pooled, y, self.recipe.contrastive_temperature
                        )
            loss = classification + self.recipe.contrastive_weight * contrastive
            opt.zero_grad(set_to_none=True)
            lr_used = opt.param_groups[0]["lr"]
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
            # train_loss is the classification loss alone (comparable with valid_loss); the
            # contrastive term is reported next to it
            last_loss = float(classification.detach())
            extra = {"lr": lr_used}
            if self.recipe.contrastive_weight:
                extra["contrastive_loss"] = float(contrastive.detach())
            report = StepReport(step=step, total_steps=total, train_loss=last_loss, extra=extra)
            if prep.valid is not None and planning.is_evaluation_step(step, total, eval_every):
                report.valid_loss, report.valid_accuracy = self._evaluate(prep, heads, tspec)
            on_step(report)
        prep.enc.eval()
        return last_loss

    def _votes(
        self, prep: Prepared, targets: list[TargetSpec], check_cancelled: CancelCheck
    ) -> NearestNeighbourVotes | None:
        """The fine-tuned sentence vectors of every training text, with the labels of each
        single-label target (``None`` when ``votes_weight`` is 0 or every target is
        multi-label). The top layers run on the cached inputs: about a tenth of the steps'
        time."""
        singles = [i for i, t in enumerate(targets) if not t.multi_label]
        if not self.recipe.votes_weight or not singles:
            return None
        n = len(prep.train.ids)
        vectors = torch.zeros((n, prep.enc.hidden_size), dtype=torch.float32)
        order = np.argsort(prep.train.lengths, kind="stable").tolist()
        prep.enc.eval()
        with torch.inference_mode():
            for s in range(0, n, FROZEN_BATCH):
                check_cancelled()
                idx = order[s : s + FROZEN_BATCH]
                hidden, mask = prep.train.batch(idx)
                with autocast(self._device):
                    out = prep.enc.run_layers(hidden, mask, prep.n_bottom, len(prep.enc.layers))
                vectors[idx] = prep.enc.pool(out, mask).cpu()
        keep = torch.ones(n, dtype=torch.bool)
        for i in singles:  # a training label is always known; guard anyway
            keep &= prep.ys_train[i] != IGNORE
        labels = {i: prep.ys_train[i][keep].cpu() for i in singles}
        return NearestNeighbourVotes(
            vectors[keep].half().float(),  # as stored (float16), so training and serving agree
            labels,
            {i: len(targets[i].labels) for i in singles},
            self.recipe.votes_k,
            self.recipe.votes_temperature,
            self.recipe.votes_weight,
        )

    def _save(
        self,
        out_dir: Path,
        prep: Prepared,
        heads: nn.ModuleList,
        targets: list[TargetSpec],
        config: TrainConfig,
        stats: dict,
        votes: NearestNeighbourVotes | None = None,
    ) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        state = {
            f"encoder.{k}": v.detach().float().cpu().contiguous()
            for k, v in prep.enc.model.state_dict().items()
        }
        for i, module in enumerate(heads):
            head = cast(nn.Linear, module)  # every head is an nn.Linear
            state[f"heads.{i}.weight"] = head.weight.detach().float().cpu().contiguous()
            state[f"heads.{i}.bias"] = head.bias.detach().float().cpu().contiguous()
        save_file(
            state, str(out_dir / "model.safetensors"), metadata={"format": model_format.FORMAT}
        )
        prep.enc.hf_config.save_pretrained(str(out_dir))
        prep.tokenizer.save_pretrained(str(out_dir))
        n_top = len(prep.enc.layers) - prep.n_bottom
        votes_spec = None
        if votes is not None:
            votes.save(out_dir / VOTES_DIR)
            digests = {
                f.name: sha256_file(f)
                for f in sorted((out_dir / VOTES_DIR).iterdir())
                if f.is_file()
            }
            votes_spec = {
                "path": VOTES_DIR,
                "targets": votes.targets,
                "size": votes.size,
                "k": votes.k,
                "temperature": votes.temperature,
                "weight": votes.weight,
                "rule": VOTES_RULE,
                "sha256": digests,
            }
        r = self.recipe
        precision = amp_dtype(self._device)
        meta = {
            "trainer": "encoder",
            "base_model": self.base_model,
            "encoder": self.model_name,
            "targets": [
                {
                    "name": t.name,
                    "labels": list(t.labels),
                    "multi_label": t.multi_label,
                    "head": f"heads.{i}",
                }
                for i, t in enumerate(targets)
            ],
            "multi_label_threshold": MULTI_LABEL_THRESHOLD,
            "max_length": r.max_length,
            "pooling": "mean",
            "normalize": True,
            "votes": votes_spec,
            "recipe": {
                **r.as_dict(),
                "training_steps": config.training_steps,
                "learning_rate": config.learning_rate,
                "head_learning_rate": config.learning_rate * r.head_lr_factor,
                "weight_decay": config.weight_decay,
                "warmup_fraction": config.warmup_fraction,
                "seed": config.seed,
                "loss": "cross-entropy per single-label target, binary cross-entropy per "
                "multi-label target"
                + (
                    f", + {r.contrastive_weight:g} x supervised contrastive loss (Khosla et "
                    f"al., 2020) at temperature {r.contrastive_temperature:g}"
                    if r.contrastive_weight
                    else ""
                ),
                "schedule": "linear warm-up, linear decay to 0",
                "trainable_layers": n_top,
                "frozen": "embeddings and bottom layers (outputs cached)",
                "warm_start": (
                    f"logistic regression on frozen embeddings, C={r.warm_start_c:g}"
                    if r.warm_start
                    else None
                ),
                "batching": f"epoch-shuffled, length-bucketed ({BUCKET_BATCHES} batches/chunk)",
                "device": self.device,
                "mixed_precision": str(precision).replace("torch.", "") if precision else None,
            },
            "training": stats,
        }
        model_format.write(out_dir, meta)
