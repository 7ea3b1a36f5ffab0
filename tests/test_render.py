"""profiler.reports.render: HTML tables whose figures never wrap while their text may, so that a wide table fits."""
from __future__ import annotations

import pandas as pd

from profiler.reports.render import _table_html


def test_figures_stay_whole_and_text_may_wrap():
    graded_on = "arch reference, dtype float32, autocast none, attention explicit or sdpa-math, one device"
    frame = pd.DataFrame([["seed_000", graded_on, "12.3 % / 29.6 %", "26.20 GB (24.40 GiB)", "1,637,176,000", None]],
                         columns=["formula set", "graded on", "peak", "stated", "params", "empty"])
    page = _table_html(frame)
    assert f'<td class="prose">{graded_on}</td>' in page  # prose: wraps, in a column of at least 12em
    assert '<td class="wrap">26.20 GB (24.40 GiB)</td>' in page  # a figure with its units: may wrap at a space
    assert "<td>12.3 % / 29.6 %</td>" in page and "<td>1,637,176,000</td>" in page  # figures: never wrap
    assert "<td>seed_000</td>" in page and "<td></td>" in page
    assert _table_html(pd.DataFrame([["a < b & c"]], columns=["x"])).count("a &lt; b &amp; c") == 1
