"""The contract between the Classifier Factory service and its trainers.

A trainer turns validated training examples into a model directory, and loads such a
directory back as a :class:`Predictor`. The service owns jobs, files and state; trainers
own only the maths. Artifacts are written as JSON, ``.npy``/``safetensors`` tensors and
tokenizer files — never pickle — so loading a model can never execute code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

Label = str | list[str]


@dataclass(frozen=True)
class Example:
    text: str
    labels: dict[str, Label]


@dataclass(frozen=True)
class TargetSpec:
    """One classification target inferred from the training data."""

    name: str
    labels: list[str]  # sorted
    multi_label: bool  # True when the training values are lists

    @property
    def loss_function(self) -> str:
        return "multi_class" if self.multi_label else "single_class"


@dataclass(frozen=True)
class TrainConfig:
    """A job's hyperparameters as a trainer sees them (each trainer's ``defaults`` is one)."""

    training_steps: int
    learning_rate: float
    weight_decay: float
    warmup_fraction: float
    seed: int = 0


@dataclass
class StepReport:
    """What a trainer reports after an optimizer step (``valid`` only on evaluation steps)."""

    step: int
    total_steps: int
    train_loss: float
    valid_loss: float | None = None
    valid_accuracy: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class DataRefused(Exception):
    """A trainer cannot train on this data; the message says why and where (file, line)."""


@dataclass
class DataCheck:
    """What a trainer found in a job's training data before training (see ``check_data``)."""

    warnings: list[str] = field(default_factory=list)
    memory_bytes: int | None = None  # estimated peak training memory, when it grows with data
    memory_how: str = ""  # how the estimate was made, for the refusal message


class Cancelled(Exception):
    """Raised by the progress callback when the job was cancelled; trainers let it propagate."""


ProgressCallback = Callable[[StepReport], None]

CancelCheck = Callable[[], None]
"""Raises :class:`Cancelled` when the job was cancelled; trainers call it during long work
before the first step (the frozen pass, feature extraction), so a cancel is not kept waiting."""


def never_cancelled() -> None:
    """The :data:`CancelCheck` of a training nobody can cancel (tests, benchmarks)."""


class Predictor(Protocol):
    targets: list[TargetSpec]

    def predict(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        """Scores for every target and every label of that target, one dict per text."""


class Trainer(Protocol):
    base_model: str  # the id served by GET /v1/models
    description: str
    # fixed and reported: a training step is one optimizer step on this many examples
    # (0 = full batch: every step sees every training example)
    batch_size: int
    # the hyperparameters a job gets when its request leaves them out (seed 0)
    defaults: TrainConfig
    # where it trains: "cpu", "cuda" or "mps" (goes into the job's metadata)
    device: str

    @property
    def max_context_length(self) -> int:
        """Longest input in tokens (encoders truncate beyond it); GET /v1/models serves it."""

    def availability(self) -> tuple[bool, str]:
        """(True, "") when this machine can train the model, else (False, why not)."""

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
        """Train and write the model into ``out_dir`` (a fresh, empty directory).

        Call ``on_step`` after every optimizer step (it may raise :class:`Cancelled`), and
        ``check_cancelled`` every second or so of the work before the first step; report
        validation loss and accuracy at least on the final step when ``valid`` is given.
        """

    def check_data(
        self,
        files: Sequence[tuple[str, Path]],
        sample: Sequence[str],
        n_texts: int,
        n_labels: int,
    ) -> DataCheck:
        """This trainer's own checks of a job's training data, at validation.

        ``files`` are (name shown to the user, path) of the training files (stream them: they
        may be large), ``sample`` a random sample of their utterances (all of them when there
        are few), ``n_texts`` how many there are, ``n_labels`` the labels of all targets
        together. Raise :class:`DataRefused` when the data cannot be trained on; return
        warnings and, where training memory grows with the data, an estimate the service
        checks against its limit. Memory here must not grow with the files' size.
        """

    def load(self, model_dir: Path) -> Predictor:
        """Load a directory written by :meth:`train`."""

    def expected_seconds(self, n_train: int, config: TrainConfig) -> int:
        """Rough duration estimate shown in the job's metadata."""


DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""Where encoder trainers may run (``auto``: CUDA, then Apple MPS, then CPU)."""

MULTI_LABEL_THRESHOLD = 0.5
"""Multi-label targets get independent sigmoid scores; a label applies when its score ≥ this."""
