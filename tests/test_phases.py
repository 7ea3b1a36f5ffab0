"""Phase windows from train_step's marks, and phase figures combined from the windows' (both backends use it)."""
import pytest

from profiler.measuring.phases import combine, windows


def test_windows_name_each_micro_batch():
    marks = ["forward", "backward", "forward", "backward", "optimizer", "end"]
    assert windows(marks) == [("forward", 1), ("backward", 1), ("forward", 2), ("backward", 2), ("optimizer", None)]


@pytest.mark.parametrize("marks", [["forward", "optimizer", "end"], ["forward", "backward", "end"],
                                   ["backward", "forward", "optimizer", "end"]])
def test_windows_reject_a_step_that_is_not_one(marks):
    with pytest.raises(ValueError, match="not"):
        windows(marks)


def window(peak, start, end):
    return {"peak_bytes": peak, "start_bytes": start, "end_bytes": end}


def test_combine_takes_the_highest_window_first_on_ties():
    figures = combine([("forward", 1, window(50, 10, 40)), ("backward", 1, window(60, 40, 20)),
                       ("forward", 2, window(70, 20, 50)), ("backward", 2, window(60, 50, 20)),
                       ("optimizer", None, window(65, 20, 10))])
    assert figures["phases"]["forward"] == {**window(70, 10, 50), "micro_batch": 2}
    assert figures["phases"]["backward"] == {**window(60, 40, 20), "micro_batch": 1}
    assert (figures["peak_bytes"], figures["peak_phase"]) == (70, "forward")
    assert figures["micro_batches"]["2"]["forward"] == window(70, 20, 50)


def test_one_micro_batch_adds_no_micro_batch_keys():
    figures = combine([("forward", 1, window(5, 1, 4)), ("backward", 1, window(6, 4, 2)),
                       ("optimizer", None, window(3, 2, 1))])
    assert "micro_batches" not in figures and "micro_batch" not in figures["phases"]["forward"]
    assert (figures["peak_bytes"], figures["peak_phase"]) == (6, "backward")
