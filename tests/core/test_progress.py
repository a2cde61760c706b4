import io

import pytest

from jaxmem import progress
from jaxmem.progress import Progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_forced_bar_writes_work_label_and_times_to_its_stream(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    stream = io.StringIO()
    bar = Progress(1000, stream=stream, enabled=True)
    for i in range(4):
        bar.update(250, f"bucket {i + 1}/4")
    text = stream.getvalue()
    assert "100%" in text and "bucket 4/4" in text and "1.00k/1.00k" in text
    assert "00:00<00:00" in text  # elapsed < time left
    assert text.endswith("\n")  # closed when the work reached the total
    assert bar.done == 1000


def test_a_disabled_bar_writes_nothing(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")  # an explicit enabled=False wins over the environment
    stream = _Tty()
    bar = Progress(10, stream=stream, enabled=False)
    bar.update(5, "half")
    bar.close()
    assert stream.getvalue() == "" and bar.done == 5


def test_default_follows_the_terminal_and_the_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert not Progress(10, stream=io.StringIO()).enabled
    assert Progress(10, stream=_Tty()).enabled
    monkeypatch.setenv(progress.ENV, "0")
    quiet = _Tty()
    Progress(10, stream=quiet).update(10, "done")
    assert quiet.getvalue() == ""
    monkeypatch.setenv(progress.ENV, "1")
    loud = io.StringIO()
    Progress(10, stream=loud).update(10, "done")
    assert "done" in loud.getvalue()
    monkeypatch.setenv(progress.ENV, "maybe")
    with pytest.warns(UserWarning, match="JAXMEM_PROGRESS"):
        assert not Progress(10, stream=io.StringIO()).enabled


def test_a_subclass_may_replace_update_without_a_bar():
    seen = []

    class Record(Progress):
        def update(self, work, label):
            seen.append(label)

    Record(1.0, enabled=False).update(1, "x")
    assert seen == ["x"]


def test_a_notebook_kernel_turns_it_on_by_default(monkeypatch):
    import sys
    import types

    monkeypatch.delenv(progress.ENV, raising=False)
    kernel = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert progress.in_notebook() and progress.default_enabled(io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress.default_enabled(io.StringIO())


def test_a_log_file_gets_one_line_per_update_unless_silenced(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    stream = io.StringIO()  # not a terminal: a batch job's log
    bar = Progress(100, stream=stream)
    bar.update(25, "bucket 1/2: step 50/100")
    bar.update(75, "bucket 2/2: step 100/100")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("jaxmem:  25% bucket 1/2: step 50/100 (")
    assert "s left" in lines[0] and lines[1].startswith("jaxmem: 100% bucket 2/2")
    monkeypatch.setenv(progress.ENV, "0")
    quiet = io.StringIO()
    Progress(100, stream=quiet).update(50, "half")
    assert quiet.getvalue() == ""
