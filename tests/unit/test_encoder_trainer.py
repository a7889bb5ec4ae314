"""The encoder trainer on tiny hand-written data (offline; uses the bundled all-MiniLM-L6-v2)."""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers.factory.trainers.base import (  # noqa: E402
    MULTI_LABEL_THRESHOLD,
    Cancelled,
    Example,
    StepReport,
    TargetSpec,
    TrainConfig,
)
from helpers.factory.trainers.encoder import EncoderPredictor, EncoderTrainer  # noqa: E402
from helpers.factory.trainers.models import (  # noqa: E402
    DEFAULT_ENCODER,
    ENCODERS,
    resolve_encoder,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        resolve_encoder(DEFAULT_ENCODER) is None, reason="all-MiniLM-L6-v2 is not available offline"
    ),
]

UTTERANCES = {
    "weather": [
        "what's the weather like today",
        "will it rain tomorrow",
        "is it cold outside",
        "forecast for the weekend please",
        "do I need an umbrella this afternoon",
        "how hot will it be in paris",
        "is it going to snow tonight",
        "tell me the temperature",
        "is it sunny in london right now",
        "what is the forecast for monday",
    ],
    "music": [
        "play some jazz",
        "put on my workout playlist",
        "play the latest song by adele",
        "I want to hear some rock music",
        "shuffle my favourite songs",
        "play a song by queen",
        "start the classical radio station",
        "turn on some relaxing music",
        "play the album thriller",
        "next track please",
    ],
    "alarm": [
        "wake me up at seven",
        "set an alarm for 6 am",
        "cancel my morning alarm",
        "set a timer for ten minutes",
        "remind me at noon with an alarm",
        "change my alarm to half past eight",
        "delete all alarms",
        "alarm for tomorrow at five",
        "snooze the alarm",
        "what alarms do I have set",
    ],
}
TOPICS = {"weather": ["outdoors"], "music": ["media", "fun"], "alarm": ["time"]}


def _intent_data() -> list[Example]:
    return [Example(t, {"intent": k}) for k, texts in UTTERANCES.items() for t in texts]


def _multi_data() -> list[Example]:
    return [
        Example(t, {"intent": k, "topics": TOPICS[k]})
        for k, texts in UTTERANCES.items()
        for t in texts
    ]


INTENT = TargetSpec("intent", sorted(UTTERANCES), False)
TOPIC = TargetSpec("topics", sorted({x for v in TOPICS.values() for x in v}), True)
CONFIG = TrainConfig(
    training_steps=4, learning_rate=1e-4, weight_decay=0.01, warmup_fraction=0.25, seed=3
)
PROBES = [
    "is it raining in berlin",
    "play something by the beatles",
    "wake me at 5",
    "x" * 2000 + " very long text that must be truncated",
]


@pytest.fixture(scope="module")
def trainer() -> EncoderTrainer:
    return EncoderTrainer(DEFAULT_ENCODER)


@pytest.fixture(scope="module")
def single_model(trainer, module_tmp) -> tuple[Path, list[StepReport]]:
    out = module_tmp("single")
    reports: list[StepReport] = []
    data = _intent_data()
    trainer.train(data, data[::3], [INTENT], CONFIG, out, reports.append)
    return out, reports


@pytest.fixture(scope="module")
def multi_model(trainer, module_tmp) -> Path:
    out = module_tmp("multi")
    data = _multi_data()
    trainer.train(data, data[::4], [INTENT, TOPIC], CONFIG, out, lambda r: None)
    return out


def test_protocol_attributes(trainer):
    assert trainer.base_model == "minilm-l6-v2"
    assert "/" not in trainer.base_model
    assert trainer.batch_size > 0 and trainer.description
    assert trainer.availability() == (True, "")
    assert trainer.expected_seconds(100, CONFIG) > 0
    assert DEFAULT_ENCODER in ENCODERS.values()
    missing = EncoderTrainer("sentence-transformers/no-such-model-for-tests")
    ok, why = missing.availability()
    assert not ok and why


def test_step_reports(single_model):
    _, reports = single_model
    assert [r.step for r in reports] == [1, 2, 3, 4]
    assert all(r.total_steps == 4 and math.isfinite(r.train_loss) for r in reports)
    assert reports[-1].valid_loss is not None
    assert 0.0 <= reports[-1].valid_accuracy <= 1.0


def test_single_label_scores(trainer, single_model):
    out, _ = single_model
    predictor = trainer.load(out)
    assert [t.name for t in predictor.targets] == ["intent"]
    preds = predictor.predict(PROBES)
    assert len(preds) == len(PROBES)
    for p in preds:
        assert set(p) == {"intent"}
        assert set(p["intent"]) == set(INTENT.labels)
        assert all(type(v) is float for v in p["intent"].values())
        assert sum(p["intent"].values()) == pytest.approx(1.0, abs=1e-5)
    # the warm-started head already separates these easy intents
    top = [max(p["intent"], key=p["intent"].get) for p in preds[:3]]
    assert top == ["weather", "music", "alarm"]


def test_saved_files_and_round_trip(trainer, single_model):
    out, _ = single_model
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "classifier.json", "config.json"} <= names
    assert any(n.startswith("tokenizer") for n in names)
    for p in out.rglob("*"):
        assert p.suffix not in {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
        if p.is_file():
            assert not p.read_bytes()[:2] == b"\x80\x04", f"{p} looks like a pickle"
    a = trainer.load(out).predict(PROBES)
    b = trainer.load(out).predict(PROBES)
    assert a == b
    # in float32, batching and order do not change a text's scores
    fp32 = EncoderPredictor.load(out, precision="fp32")
    batched = fp32.predict(PROBES)
    single = [fp32.predict([t])[0] for t in PROBES]
    for x, y, z in zip(batched, single, a, strict=True):
        for label, v in x["intent"].items():
            assert y["intent"][label] == pytest.approx(v, abs=1e-5)
            assert z["intent"][label] == pytest.approx(v, abs=0.05)  # bf16 on capable CPUs


def test_multi_target_and_multi_label(trainer, multi_model):
    predictor = trainer.load(multi_model)
    assert [t.name for t in predictor.targets] == ["intent", "topics"]
    preds = predictor.predict(PROBES[:3])
    for p in preds:
        assert set(p) == {"intent", "topics"}
        assert set(p["topics"]) == set(TOPIC.labels)
        assert sum(p["intent"].values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= v <= 1.0 for v in p["topics"].values())
    # independent sigmoids: the music probe has two topics over the threshold
    music = preds[1]["topics"]
    assert music["media"] >= MULTI_LABEL_THRESHOLD and music["fun"] >= MULTI_LABEL_THRESHOLD
    assert sum(music.values()) > 1.2


def test_deterministic(trainer, single_model, tmp_path):
    out, reports = single_model
    data = _intent_data()
    again: list[StepReport] = []
    trainer.train(data, data[::3], [INTENT], CONFIG, tmp_path, again.append)
    assert [r.train_loss for r in again] == [r.train_loss for r in reports]
    assert (tmp_path / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    assert trainer.load(tmp_path).predict(PROBES) == trainer.load(out).predict(PROBES)


def test_cancel_stops_training(trainer, tmp_path):
    seen: list[int] = []

    def on_step(r: StepReport) -> None:
        seen.append(r.step)
        if r.step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        trainer.train(
            _intent_data(), None, [INTENT], TrainConfig(50, 1e-4, 0.01, 0.1), tmp_path, on_step
        )
    assert seen == [1, 2]
    assert not (tmp_path / "model.safetensors").exists()


def test_cancel_before_the_first_step_stops_the_frozen_pass(trainer, tmp_path):
    """A cancel during the frozen pass (seconds on a large file) is not kept waiting."""
    calls: list[int] = []
    steps: list[int] = []

    def check_cancelled() -> None:
        calls.append(1)
        if len(calls) == 1:  # the first check, before the first batch of the frozen pass
            raise Cancelled()

    with pytest.raises(Cancelled):
        trainer.train(
            _intent_data(),
            None,
            [INTENT],
            CONFIG,
            tmp_path,
            lambda r: steps.append(r.step),
            check_cancelled,
        )
    assert calls == [1] and steps == []
    assert not (tmp_path / "model.safetensors").exists()


def test_tiny_dataset_and_threads(trainer, tmp_path):
    data = [Example(t, {"intent": k}) for k in ("weather", "music") for t in UTTERANCES[k][:4]]
    target = TargetSpec("intent", ["music", "weather"], False)
    reports: list[StepReport] = []
    config = TrainConfig(3, 1e-4, 0.01, 0.1, seed=1)
    trainer.train(data, None, [target], config, tmp_path, reports.append)
    assert len(reports) == 3 and reports[-1].valid_accuracy is None
    predictor = trainer.load(tmp_path)
    expected = predictor.predict(PROBES)
    results: list = [None] * 4

    def work(i: int) -> None:
        results[i] = predictor.predict(PROBES)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def _top(pred: dict) -> dict:
    return {target: max(scores, key=scores.get) for target, scores in pred.items()}


def test_onnx_engine_gives_pytorchs_scores(single_model, multi_model):
    for out in (single_model[0], multi_model):
        shutil.rmtree(out / "serving", ignore_errors=True)
        in_torch = EncoderPredictor.load(out, engine="torch")
        in_onnx = EncoderPredictor.load(out, engine="onnx")
        assert (in_torch.engine, in_onnx.engine) == ("torch", "onnx")
        # ONNX Runtime holds the weights; PyTorch's copy is freed
        assert all(p.device.type == "meta" for p in in_onnx.enc.parameters())
        assert in_onnx.enc.hidden_size == in_torch.enc.hidden_size
        assert EncoderPredictor.load(out, precision="fp32").engine == "onnx"  # auto on a CPU
        a, b = in_torch.predict(PROBES), in_onnx.predict(PROBES)
        single = [in_onnx.predict([t])[0] for t in PROBES]
        for x, y, z in zip(a, b, single, strict=True):
            assert _top(x) == _top(y) == _top(z)
            for target, scores in x.items():
                for label, v in scores.items():
                    assert y[target][label] == pytest.approx(v, abs=1e-5)
                    assert z[target][label] == pytest.approx(v, abs=1e-5)
        np.testing.assert_allclose(in_onnx.embed(PROBES), in_torch.embed(PROBES), atol=1e-5)


def test_onnx_graph_is_cached_refreshed_and_kept_in_memory_when_unwritable(
    single_model, monkeypatch
):
    from helpers.factory.trainers import onnx_engine

    out, _ = single_model
    shutil.rmtree(out / "serving", ignore_errors=True)
    exports = []
    real_export = onnx_engine.export_onnx
    monkeypatch.setattr(
        onnx_engine, "export_onnx", lambda *a: (exports.append(a[1]), real_export(*a))[1]
    )
    expected = EncoderPredictor.load(out, engine="torch").predict(PROBES)
    EncoderPredictor.load(out, engine="onnx")
    graph = onnx_engine.cached_graph(out)
    assert graph.is_file() and len(exports) == 1
    # no temporary left; the graph's sha256 beside it
    assert sorted(p.name for p in graph.parent.iterdir()) == [graph.name, f"{graph.stem}.sha256"]
    EncoderPredictor.load(out, engine="onnx")
    assert len(exports) == 1  # reused
    newer = graph.stat().st_mtime + 10
    os.utime(out / "model.safetensors", (newer, newer))  # the weights were rewritten
    EncoderPredictor.load(out, engine="onnx")
    assert len(exports) == 2
    graph = onnx_engine.cached_graph(out)
    assert sorted(p.name for p in graph.parent.iterdir()) == [graph.name, f"{graph.stem}.sha256"]

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(onnx_engine.tempfile, "mkstemp", refuse)
    newer += 10
    os.utime(out / "model.safetensors", (newer, newer))
    in_memory = EncoderPredictor.load(out, engine="onnx")
    assert len(exports) == 3 and not exports[-1].startswith(str(out))
    assert not onnx_engine.cached_graph(out).exists()
    for x, y in zip(expected, in_memory.predict(PROBES), strict=True):
        assert _top(x) == _top(y)
        assert y["intent"] == pytest.approx(x["intent"], abs=1e-5)


def test_an_altered_serving_graph_is_exported_again_not_served(single_model, multi_model, caplog):
    """Issue 29: a valid graph that is not this model's (here: another model's) gave silently
    different scores; its sha256 no longer matches, so it is logged and exported again."""
    from helpers.factory.trainers import onnx_engine

    out, _ = single_model
    expected = EncoderPredictor.load(out, engine="torch").predict(PROBES)
    EncoderPredictor.load(out, engine="onnx")
    EncoderPredictor.load(multi_model, engine="onnx")
    graph = onnx_engine.cached_graph(out)
    shutil.copyfile(onnx_engine.cached_graph(multi_model), graph)  # valid, but not this model's
    with caplog.at_level(logging.WARNING, logger=onnx_engine.__name__):
        served = EncoderPredictor.load(out, engine="onnx").predict(PROBES)
    assert f"{graph}: its content differs from its sha256 at export" in caplog.text
    for x, y in zip(expected, served, strict=True):
        assert _top(x) == _top(y)
        assert y["intent"] == pytest.approx(x["intent"], abs=1e-5)
    caplog.clear()
    (graph.parent / f"{graph.stem}.sha256").unlink()  # a graph nobody vouches for
    with caplog.at_level(logging.WARNING, logger=onnx_engine.__name__):
        EncoderPredictor.load(out, engine="onnx")
    assert f"{graph}: no sha256 beside it; exporting it again" in caplog.text
    assert (graph.parent / f"{graph.stem}.sha256").is_file()


def test_auto_engine_falls_back_to_pytorch_when_onnx_fails(single_model, monkeypatch, caplog):
    from helpers.factory.trainers import onnx_engine

    out, _ = single_model

    def broken(*args, **kwargs):
        raise RuntimeError("exporter does not know this architecture")

    monkeypatch.setattr(onnx_engine, "export_onnx", broken)
    shutil.rmtree(out / "serving", ignore_errors=True)
    predictor = EncoderPredictor.load(out)  # auto: a warning, then PyTorch
    assert predictor.engine == "torch"
    assert "ONNX Runtime cannot run" in caplog.text and "does not know" in caplog.text
    expected = EncoderPredictor.load(out, engine="torch").predict(PROBES)
    for x, y in zip(expected, predictor.predict(PROBES), strict=True):
        assert y["intent"] == pytest.approx(x["intent"], abs=1e-5)
    with pytest.raises(RuntimeError, match="does not know this architecture"):
        EncoderPredictor.load(out, engine="onnx")  # asked for by name: the error is raised
