"""Every knob of the encoder classifier and its default, in one dataclass (like setfit's
``TrainingArguments``), and the two named recipes the service offers.

* :data:`PLAIN` — the default (base model ``minilm-l6-v2``): cross-entropy on one linear head
  per target, the top 4 layers trained on cached outputs of the frozen bottom 2, heads
  warm-started by a logistic regression. What lessons 3-9 train.
* :data:`EXTRAS` — the same plus two extras (base model ``minilm-l6-v2-extras``): a supervised
  contrastive term in the loss (:mod:`.losses`) and the votes of the nearest training texts
  blended into the scores (:mod:`.votes`). Measured against the plain recipe in
  ``benchmarks/README.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..base import TrainConfig

DEFAULTS = TrainConfig(
    training_steps=450,
    learning_rate=2e-4,
    weight_decay=0.01,
    warmup_fraction=0.1,
)
"""The job hyperparameters the service uses when a request leaves them out."""


@dataclass(frozen=True)
class EncoderRecipe:
    """How an encoder classifier is trained and scored (the job's hyperparameters aside)."""

    name: str = "plain"
    max_length: int = 64
    """Tokens kept per text (MASSIVE commands average ~10)."""
    trainable_layers: int = 4
    """Top transformer layers fine-tuned; the bottom ones are frozen and their outputs cached."""
    batch_size: int = 32
    head_lr_factor: float = 10.0
    """The heads' learning rate is ``learning_rate`` times this."""
    layer_lr_decay: float = 1.0
    """Each lower trainable layer's rate is this times the rate of the layer above."""
    label_smoothing: float = 0.0
    warm_start: bool = True
    """Start each head from a logistic regression fitted on the frozen sentence vectors."""
    warm_start_c: float = 10.0
    """Inverse L2 strength of that regression (scikit-learn's ``C``)."""
    contrastive_weight: float = 0.0
    """Weight of the supervised contrastive term (0 = off; an extra)."""
    contrastive_temperature: float = 0.1
    votes_weight: float = 0.0
    """Share of the nearest training texts' votes in the scores (0 = off; an extra)."""
    votes_k: int = 10
    votes_temperature: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.votes_weight < 1.0:
            raise ValueError(f"votes_weight must be in [0, 1), got {self.votes_weight}")
        if self.votes_k < 1 or self.votes_temperature <= 0:
            raise ValueError(
                f"votes_k must be >= 1 and votes_temperature > 0, got {self.votes_k}, "
                f"{self.votes_temperature}"
            )
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError(
                f"contrastive_weight must be >= 0 and contrastive_temperature > 0, got "
                f"{self.contrastive_weight}, {self.contrastive_temperature}"
            )
        if self.trainable_layers < 1 or self.batch_size < 1 or self.max_length < 1:
            raise ValueError(
                "trainable_layers, batch_size and max_length must be >= 1, got "
                f"{self.trainable_layers}, {self.batch_size}, {self.max_length}"
            )

    def with_(self, **changes) -> EncoderRecipe:
        """A copy with ``changes`` (unknown names are a ``TypeError`` that lists the known)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown recipe field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


PLAIN = EncoderRecipe()
EXTRAS = EncoderRecipe(
    name="extras", contrastive_weight=0.5, votes_weight=0.4, votes_k=10, votes_temperature=0.05
)
RECIPES = {r.name: r for r in (PLAIN, EXTRAS)}
