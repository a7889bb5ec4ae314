import pytest
from notebook_runner import outputs_text, run_notebook
from papermill.exceptions import PapermillExecutionError

pytestmark = pytest.mark.slow  # real training or kernels: `make test`, not test-fast


@pytest.fixture(scope="module")
def executed(module_tmp, massive_like):
    out = module_tmp("nb")
    work = out / "work"
    nb1 = run_notebook(
        "01_explore_data.ipynb", out, data_source=str(massive_like), work_dir=str(work)
    )
    nb2 = run_notebook("02_format_data.ipynb", out, work_dir=str(work))
    return nb1, nb2, work


def test_01_reproduces_the_seed_subset_on_a_local_folder(executed):
    nb1, _, work = executed
    text = outputs_text(nb1)
    assert "rows per split: {'train': 5313, 'validation': 664, 'test': 665}" in text
    assert "16 intents" in text and "dropped 3 with < 200 rows" in text
    assert (work / "splits" / "train.parquet").exists()


def test_02_writes_and_validates_the_training_files(executed):
    _, nb2, work = executed
    assert sum(1 for _ in open(work / "train.jsonl")) == 5313
    assert sum(1 for _ in open(work / "validation.jsonl")) == 664
    assert sum(1 for _ in open(work / "test.jsonl")) == 665
    text = outputs_text(nb2)
    assert "OK (train.jsonl: 5313 examples, validation.jsonl: 664 examples)" in text
    assert "broken_example.jsonl, line 2: invalid JSON" in text


def test_02_alone_recreates_the_splits_and_says_so(tmp_path):
    work = tmp_path / "empty"  # no lesson 1 here: lesson 2 redoes it (offline sample)
    nb2 = run_notebook("02_format_data.ipynb", tmp_path, work_dir=str(work))
    text = outputs_text(nb2)
    assert "pipeline: work_dir lacked" in text and "redid lesson(s) 01" in text
    assert sum(1 for _ in open(work / "train.jsonl")) == 3627


def test_unknown_parameter_stops_the_notebook(tmp_path, massive_like):
    with pytest.raises(PapermillExecutionError, match="'min_sample' .did you mean 'min_samples'"):
        run_notebook(
            "01_explore_data.ipynb",
            tmp_path,
            data_source=str(massive_like),
            work_dir=str(tmp_path / "w"),
            min_sample=50,
        )
