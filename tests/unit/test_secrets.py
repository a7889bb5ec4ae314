import sys
import types

from helpers import secrets


def fake_colab(monkeypatch, values):
    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=lambda name: values[name])  # KeyError if missing
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_environment_comes_first(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "from-env")
    fake_colab(monkeypatch, {"SOME_API_KEY": "from-colab"})
    assert secrets.get_secret("SOME_API_KEY") == "from-env"


def test_colab_secret_when_the_environment_has_none(monkeypatch):
    monkeypatch.delenv("SOME_API_KEY", raising=False)
    fake_colab(monkeypatch, {"SOME_API_KEY": "from-colab"})
    assert secrets.get_secret("SOME_API_KEY") == "from-colab"


def test_missing_colab_secret_and_no_person_gives_none(monkeypatch):
    monkeypatch.delenv("SOME_API_KEY", raising=False)
    fake_colab(monkeypatch, {})
    asked = []
    monkeypatch.setattr(secrets.getpass, "getpass", lambda prompt: asked.append(prompt) or "x")
    monkeypatch.setenv("CI", "true")  # as under papermill in CI: nobody at the keyboard
    assert secrets.get_secret("SOME_API_KEY") is None
    assert asked == []


def test_hidden_prompt_only_when_a_person_is_there(monkeypatch):
    monkeypatch.delenv("SOME_API_KEY", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(secrets, "_person_at_keyboard", lambda: True)
    monkeypatch.setattr(secrets.getpass, "getpass", lambda prompt: "  typed-key  ")
    assert secrets.get_secret("SOME_API_KEY") == "typed-key"
    assert secrets.get_secret("SOME_API_KEY", prompt=False) is None
