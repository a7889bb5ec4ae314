"""The encoder classifier: a pretrained sentence encoder fine-tuned with a linear head per target.

**The plain recipe** (:data:`.recipe.PLAIN`, base model ``minilm-l6-v2``; what lessons 3-9 train):

1. **Tokenise once** (at most 64 word pieces per text) and run the pretrained encoder's frozen
   bottom 2 layers once over the training and validation texts; their outputs are cached
   (:mod:`.frozen_cache`: float32 up to a 1 GiB budget, then float16, then recomputed per batch).
2. **Warm-start each head** with a logistic regression on the frozen encoder's sentence vectors
   (:mod:`.warm_start`), so step 0 already scores about as well as "frozen embeddings + logistic
   regression".
3. **Fine-tune** the top 4 transformer layers and the heads end to end (:mod:`.trainer`): AdamW
   (learning rate 2e-4 for the layers, 10x for the heads, weight decay 0.01 on weight
   matrices), linear warm-up over 10% of the 450 steps then linear decay to zero; each step is
   one batch of 32 texts from epoch-shuffled, length-bucketed batches (:mod:`.sampler`); the
   loss is cross-entropy per single-label target, binary cross-entropy per multi-label one
   (:mod:`.losses`).
4. **Score** (:mod:`.scoring`, the one rule everything uses): the sentence vector (mean pooling
   over the tokens, L2-normalised; :mod:`.network`) goes through each head, then softmax (one
   label per text) or sigmoids (several).

**The extras recipe** (:data:`.recipe.EXTRAS`, base model ``minilm-l6-v2-extras``) adds two
things, each in its own module: a **supervised contrastive term** (Khosla et al., 2020;
:func:`.losses.supervised_contrastive_loss`, weight 0.5, temperature 0.1) that pulls sentence
vectors of the same label together, and the **votes of the nearest training texts**
(:mod:`.votes`; scores = 0.6 x softmax + 0.4 x votes of the 10 most similar training texts,
each weighted by softmax(similarity / 0.05)). The votes need every training text's vector in
the model (0.75 KB each), so such a model, and its export, carries its training set in vector
form.

Why these numbers (figures in ``benchmarks/README.md``): on the cookbook's MASSIVE subset,
candidates were screened on validation data only (3 seeds); 450 steps on the top 4 layers gave
91.63% test accuracy (the plain recipe). The votes and the contrastive term were chosen on
validation too and reach 92.33% test together: gains of about one standard error of a
665-utterance test set, measured again by ``benchmarks/recipe_compare.py``.

Loading uses safetensors, JSON and ``.npy`` only — never pickle. Tensors are loaded onto the CPU
first, so a model trained on a GPU loads and predicts on any machine. The files of a model
directory: :mod:`.model_format`.
"""

from __future__ import annotations

from .losses import supervised_contrastive_loss
from .model_format import FORMAT, FORMAT_VERSION, ModelFormatError
from .network import Encoder, load_tokenizer, pretrained_encoder
from .predictor import PREDICT_BATCH, EncoderPredictor, bf16_is_fast, resolve_precision
from .recipe import DEFAULTS, EXTRAS, PLAIN, RECIPES, EncoderRecipe
from .scoring import ScoringRule, probabilities
from .trainer import EncoderTrainer
from .votes import NearestNeighbourVotes

__all__ = [
    "DEFAULTS",
    "EXTRAS",
    "FORMAT",
    "FORMAT_VERSION",
    "PLAIN",
    "PREDICT_BATCH",
    "RECIPES",
    "Encoder",
    "EncoderPredictor",
    "EncoderRecipe",
    "EncoderTrainer",
    "ModelFormatError",
    "NearestNeighbourVotes",
    "ScoringRule",
    "bf16_is_fast",
    "load_tokenizer",
    "pretrained_encoder",
    "probabilities",
    "resolve_precision",
    "supervised_contrastive_loss",
]
