"""``hwnas report``: the HTML page of one run and of a comparison, checked structurally (parsed, every embedded
image decodes) and, where Debian's ``chromium`` is installed (``.ci/run`` installs it), rendered in a real
headless browser from a file (no server, no network): a screenshot is taken and shows the plots."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from fault_cases import TABLE_SEARCH, _nb201_tables


class Page(HTMLParser):
    """Collects the title, the images, the text and the cells marked as differing."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.text: list[str] = []
        self.differs = 0
        self.open_tags: list[str] = []
        self.in_trials = False
        self.trial_rows = 0
        self.chosen_rows = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "td" and attrs.get("class") == "differs":
            self.differs += 1
        if tag == "table" and attrs.get("class") == "trials":
            self.in_trials = True
        if tag == "tr" and self.in_trials and "thead" not in self.open_tags:
            self.trial_rows += 1
            self.chosen_rows += attrs.get("class") == "chosen"
        if tag not in ("img", "meta"):
            self.open_tags.append(tag)

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_trials = False
        assert self.open_tags and self.open_tags[-1] == tag, f"</{tag}> closes {self.open_tags[-1:]}"
        self.open_tags.pop()

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished table searches that differ in their controller and seed (on this small table the loop's
    own picks -- acquisition, exploration, fallback -- can make two controllers train the same architectures)."""
    from click.testing import CliRunner

    from hwnas.cli import main

    tmp = tmp_path_factory.mktemp("report")
    _nb201_tables(tmp)
    for seed, controller in enumerate(("random", "evolution")):
        args = ["search", *[a.format(tmp=tmp) for a in TABLE_SEARCH], "--max-trainings", "7", "--controller",
                controller, "--seed", str(seed), "--profiles-dir", str(tmp / "profiles"), "--store", str(tmp / f"{controller}.sqlite"),
                "--run-dir", str(tmp / controller)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    return tmp


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.open_tags == [], page.open_tags  # every element closed
    return page


def decoded(image: dict) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert image["src"].startswith(prefix)  # embedded: the page needs no other file
    picture = Image.open(io.BytesIO(base64.b64decode(image["src"][len(prefix):], validate=True)))
    picture.load()
    return picture


def test_report_of_one_run_shows_its_answer_and_four_plots(cli, runs, tmp_path):
    result = cli("report", runs / "random", "-o", tmp_path / "out" / "one.html")
    assert result.exit_code == 0, result.stderr
    page = parse(tmp_path / "out" / "one.html")
    text = " ".join(page.text)
    answer = json.loads((runs / "random" / "result.json").read_text())["best"]
    assert answer["arch"] in text and f"{answer['accuracy']:.4f}" in text
    assert "training budget spent" in text and "7 trainings" in text
    assert [i["alt"] for i in page.images] == ["Pareto front", "Best so far", "Progress over time",
                                               "Predictors per round", "Budget use", "Decision importance"]
    for image in page.images:
        picture = decoded(image)
        assert picture.format == "PNG" and picture.width > 300 and picture.height > 200
    assert page.differs == 0  # nothing to compare
    # the trial table: every trained candidate once, with the answer marked
    trials = json.loads((runs / "random" / "result.json").read_text())["trials"]
    assert len(trials) == 7 and page.trial_rows == 7 and page.chosen_rows == 1
    assert all(t["arch"] in text for t in trials)
    assert "predictor fit at the start of round" in text and "points" in text


def test_report_comparing_two_runs_marks_what_differs(cli, runs, tmp_path):
    result = cli("report", runs / "random", runs / "evolution", "-o", tmp_path / "cmp.html")
    assert result.exit_code == 0, result.stderr
    page = parse(tmp_path / "cmp.html")
    text = " ".join(page.text)
    for name in ("random", "evolution"):
        assert json.loads((runs / name / "result.json").read_text())["best"]["arch"] in text
    assert "2 runs compared" in text and page.differs >= 2  # the controller, at least
    # five figures for both, and each run's decision importance; a trial table each
    assert len(page.images) == 7 and all(decoded(i).format == "PNG" for i in page.images)
    assert page.trial_rows == 14


def test_report_refuses_what_is_not_a_run(cli, tmp_path):
    result = cli("report", tmp_path / "nope", "-o", tmp_path / "r.html")
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(cli, runs, tmp_path):
    assert cli("report", runs / "random", runs / "evolution", "-o", tmp_path / "cmp.html").exit_code == 0
    shot = tmp_path / "shot.png"
    browser = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2600", f"--screenshot={shot}",
         "--enable-logging=stderr", "--v=0", (tmp_path / "cmp.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert browser.returncode == 0 and shot.exists(), browser.stderr[-2000:]
    console = [line for line in browser.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    picture = Image.open(shot).convert("RGB")
    # The plots were drawn: matplotlib's first two colours (blue C0, orange C1) cover visible areas.
    colours = picture.getcolors(maxcolors=1 << 20)
    blue = sum(n for n, (r, g, b) in colours if abs(r - 31) < 30 and abs(g - 119) < 30 and abs(b - 180) < 30)
    orange = sum(n for n, (r, g, b) in colours if abs(r - 255) < 20 and abs(g - 127) < 30 and b < 60)
    assert blue > 500 and orange > 500, (blue, orange)
    # the trial table's script runs: opened as #sort=3-desc the rows come sorted by validation accuracy, best first
    dom = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
         (tmp_path / "cmp.html").as_uri() + "#sort=3-desc"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    first_table = dom.stdout.split('<table class="trials">', 1)[1].split("</table>", 1)[0]
    shown = [float(v) for v in re.findall(r'<tr[^>]*><td data-v="\d+">.*?</td><td data-v="\d+">.*?</td>'
                                          r'<td data-v="[^"]*">.*?</td><td data-v="([0-9.]+)">', first_table)]
    assert len(shown) == 7 and shown == sorted(shown, reverse=True), shown
    unsorted = [float(t["accuracy"]) for t in json.loads((runs / "random" / "result.json").read_text())["trials"]]
    assert sorted(shown) == sorted(unsorted)


def test_pareto_plot_marks_the_chosen_model_in_the_command_lines_unit():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.search.pareto import draw_pareto

    points = [{"accuracy": 0.9, "latency_ms": 0.04}, {"accuracy": 0.8, "latency_ms": 0.02}]
    for budget, unit, x in ((0.05, "µs", 40.0), (2.0, "ms", 0.04)):
        fig, ax = plt.subplots()
        draw_pareto(ax, points, budget_ms=budget, chosen=points[0])
        labels = [t.get_text() for t in ax.legend().get_texts()]
        assert ax.get_xlabel() == f"measured latency ({unit})"
        assert f"chosen (0.9000, {x:.3g} {unit})" in labels
        star = [c for c in ax.collections if c.get_offsets().shape == (1, 2)]
        assert star and tuple(star[-1].get_offsets()[0]) == pytest.approx((x, 0.9))
        plt.close(fig)


def test_a_resumed_run_is_reported_and_listed_from_its_state_not_its_last_result(cli, runs, tmp_path):
    """While a finished run is resumed with a larger budget (or after that resume was interrupted), its result.json
    is the previous session's: the report and ``hwnas trials`` show what the state holds, with no stale answer."""
    run = tmp_path / "resumed"
    shutil.copytree(runs / "random", run)
    state = json.loads((run / "state.json").read_text())
    dropped = state["verified"].pop()  # as if result.json were older than the state: one training more there
    state["finished"] = False
    (run / "state.json").write_text(json.dumps(state))
    listed = json.loads(cli("trials", run, "--json").stdout)
    assert [t["arch"] for t in listed] == [v["arch"] for v in state["verified"]] and dropped["arch"] not in {
        t["arch"] for t in listed}
    assert not [line for line in cli("trials", run).stdout.splitlines() if line.startswith("*")]
    assert cli("report", run, "-o", tmp_path / "r.html").exit_code == 0
    page = parse(tmp_path / "r.html")
    assert page.trial_rows == len(state["verified"]) and "running or interrupted" in " ".join(page.text)
