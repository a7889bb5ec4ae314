"""Device selection (CUDA -> MPS -> CPU), thread count, and loading a GPU-trained model on CPU.

No GPU is needed: availability is patched, and a "GPU-trained" model directory is simulated.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_intents import TEXTS as ALL_TEXTS  # noqa: E402

from helpers.factory.trainers import Registry, device  # noqa: E402
from helpers.factory.trainers.base import Example, TargetSpec, TrainConfig  # noqa: E402
from helpers.factory.trainers.encoder import EncoderPredictor, EncoderTrainer  # noqa: E402


def _patch(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(device, "_mps_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [
        (True, True, "cuda"),
        (True, False, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _patch(monkeypatch, cuda, mps)
    assert device.select_device("auto").type == expected
    assert device.select_device(None).type == expected
    assert device.select_device("cpu").type == "cpu"


def test_forcing_a_missing_device_names_it(monkeypatch):
    _patch(monkeypatch, False, False)
    with pytest.raises(ValueError, match="'cuda'.*no CUDA GPU"):
        device.select_device("cuda")
    with pytest.raises(ValueError, match="'mps'"):
        device.select_device("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'.*auto, cpu, cuda, mps"):
        device.select_device("tpu")


@pytest.mark.parametrize(
    ("capability", "dtype", "scaled"),
    [
        ((7, 5), torch.float16, True),  # T4: bfloat16 would be emulated
        ((8, 0), torch.bfloat16, False),  # A100
        ((8, 9), torch.bfloat16, False),  # L4
        ((9, 0), torch.bfloat16, False),  # H100
    ],
)
def test_training_precision_follows_the_gpus_compute_capability(
    monkeypatch, capability, dtype, scaled
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    # emulation counts as "supported" for this call on a T4: it must not decide
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert device.amp_dtype(cuda) is dtype
    assert isinstance(device.grad_scaler(cuda), torch.amp.GradScaler) is scaled
    ctx = device.autocast(cuda)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == dtype


def test_cpu_and_mps_train_and_serve_in_float32():
    for name in ("cpu", "mps"):
        assert device.amp_dtype(torch.device(name)) is None
        assert device.grad_scaler(torch.device(name)) is None


def test_serving_never_uses_autocast():
    """The predictor's forward pass is float32 on every device: no autocast in its code."""
    import inspect

    from helpers.factory.trainers import encoder

    source = inspect.getsource(encoder.EncoderPredictor)
    assert "autocast(" not in source and "amp_dtype(" not in source


def test_trainer_and_registry_report_the_device(monkeypatch):
    _patch(monkeypatch, True, False)
    trainer = EncoderTrainer(device="auto")
    assert trainer.device == "cuda"
    n = 5000
    assert trainer.expected_seconds(n, trainer.defaults) < EncoderTrainer(
        device="cpu"
    ).expected_seconds(n, trainer.defaults)
    _patch(monkeypatch, False, False)
    registry = Registry(device="auto")
    assert {t.device for t in registry.trainers().values()} == {"cpu"}
    assert Registry(device="cpu").get("minilm-l6-v2").device == "cpu"


def test_thread_count_comes_from_the_machine(monkeypatch):
    monkeypatch.delenv("INTENT_TORCH_THREADS", raising=False)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert device.num_threads() == expected
    monkeypatch.setenv("INTENT_TORCH_THREADS", "3")
    assert device.num_threads() == 3
    monkeypatch.setenv("INTENT_TORCH_THREADS", "two")
    with pytest.raises(ValueError, match="INTENT_TORCH_THREADS='two'"):
        device.num_threads()


TEXTS = {k: ALL_TEXTS[k] for k in ("weather", "music")}


@pytest.mark.slow  # trains an encoder
def test_gpu_trained_model_loads_and_predicts_on_cpu(tmp_path, monkeypatch):
    """A model directory whose tensors were saved from a GPU loads onto the CPU.

    safetensors files carry no device, but a GPU run saves fp32 copies of CUDA tensors and may
    record bf16/fp16 training; we simulate that directory (half-precision tensors round-tripped
    through float32, classifier.json saying cuda + bf16) and check that loading asks safetensors
    for CPU tensors and predicts like the CPU-trained model.
    """
    from safetensors.torch import load_file, save_file

    data = [Example(t, {"intent": k}) for k, v in TEXTS.items() for t in v]
    target = TargetSpec("intent", sorted(TEXTS), False)
    trainer = EncoderTrainer(device="cpu", trainable_layers=1)
    out = tmp_path / "model"
    trainer.train(data, None, [target], TrainConfig(2, 1e-4, 0.01, 0.0), out, lambda r: None)
    cpu_scores = EncoderPredictor.load(out).predict(["is it raining", "play jazz"])

    state = load_file(str(out / "model.safetensors"))
    gpu_like = {k: v.to(torch.bfloat16).float() for k, v in state.items()}  # bf16 round trip
    save_file(
        gpu_like, str(out / "model.safetensors"), metadata={"format": "factory-encoder-classifier"}
    )
    meta = json.loads((out / "classifier.json").read_text())
    meta["recipe"].update(device="cuda", mixed_precision="bfloat16")
    meta["training"]["device"] = "cuda"
    (out / "classifier.json").write_text(json.dumps(meta))

    import safetensors.torch as st

    calls = []
    real = st.load_file

    def spy(path, device="cpu"):
        calls.append(device)
        return real(path, device=device)

    monkeypatch.setattr(st, "load_file", spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    predictor = trainer.load(out)
    assert calls == ["cpu"]
    assert predictor.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in predictor.heads.parameters())
    freed = "meta" if predictor.engine == "onnx" else "cpu"  # ONNX Runtime holds the weights
    assert all(p.device.type == freed for p in predictor.enc.parameters())
    scores = predictor.predict(["is it raining", "play jazz"])
    for a, b in zip(scores, cpu_scores, strict=True):
        assert max(a["intent"], key=a["intent"].get) == max(b["intent"], key=b["intent"].get)
        for label in a["intent"]:
            assert a["intent"][label] == pytest.approx(b["intent"][label], abs=0.05)


def test_engine_choice(monkeypatch):
    from helpers.factory.trainers import onnx_engine
    from helpers.factory.trainers.onnx_engine import ENGINE_ENV, resolve_engine

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert resolve_engine(None, "fp32", cpu) == "onnx"
    assert resolve_engine("auto", "bf16", cpu) == "torch"  # bf16 stays in PyTorch
    assert resolve_engine(None, "fp32", cuda) == "torch"
    monkeypatch.setenv(ENGINE_ENV, "TORCH")
    assert resolve_engine(None, "fp32", cpu) == "torch"
    assert resolve_engine("onnx", "fp32", cpu) == "onnx"  # the argument beats the environment
    with pytest.raises(ValueError, match="float32 on the CPU only .*bf16 on cpu"):
        resolve_engine("onnx", "bf16", cpu)
    with pytest.raises(ValueError, match="float32 on the CPU only .*fp32 on cuda"):
        resolve_engine("onnx", "fp32", cuda)
    with pytest.raises(ValueError, match="unknown encoder engine 'tensorrt'"):
        resolve_engine("tensorrt", "fp32", cpu)
    monkeypatch.delenv(ENGINE_ENV)
    monkeypatch.setattr(onnx_engine, "onnxruntime_available", lambda: False)
    assert resolve_engine(None, "fp32", cpu) == "torch"
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        resolve_engine("onnx", "fp32", cpu)
