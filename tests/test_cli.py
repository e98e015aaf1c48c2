"""The command line as a user meets it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from latentnas.cli import app

BEST_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
runner = CliRunner()


def test_query_prints_the_nb201_optimum():
    result = runner.invoke(app, ["query", "nb201", BEST_NB201])
    assert result.exit_code == 0, result.output
    assert "94.0664" in result.output


def test_query_accepts_the_tuple_form_as_json_output():
    import json

    result = runner.invoke(app, ["query", "nb201", "2,2,0,2,3,2", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["report"] == 94.0664


def test_query_with_a_bad_op_is_a_one_line_error():
    result = runner.invoke(app, ["query", "nb201", BEST_NB201.replace("nor_conv_1x1", "conv7")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown NB201 op 'conv7'" in lines[0]


def test_spaces_lists_sizes():
    result = runner.invoke(app, ["spaces"])
    assert result.exit_code == 0
    assert "15,625" in result.output and "26,206" in result.output


@pytest.mark.slow
def test_demo_pretrains_shows_a_smooth_latent_space_and_races_searchers(ray_local, tmp_path,
                                                                          monkeypatch):
    import re

    from latentnas import cli

    monkeypatch.setattr(cli.console, "width", 200)
    result = runner.invoke(app, ["demo", "--seeds", "2", "--budget", "20",
                                 "--storage", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "8 searches" in result.output and "regret_vs_queries.png" in result.output
    for label in ("random", "re", "reinforce", "gp"):
        assert re.search(rf"│ {label}\s+│ (none|arch2vec)\s+│\s+20 │\s+2 │", result.output), label
    assert "100.00%" in result.output  # held-out exact-graph reconstruction
    nearest = float(re.search(r"nearest latent neighbour\s*│\s*([\d.]+)", result.output).group(1))
    random_ = float(re.search(r"random cells\s*│\s*([\d.]+)", result.output).group(1))
    assert nearest < random_ / 2


def test_bench_landscape_measures_smoothness_against_direct_computation():
    import numpy as np

    from latentnas.benchmarks import resolve
    from latentnas.latent import smoothness

    result = runner.invoke(app, ["bench", "landscape", "--encodings", "adjacency",
                                 "--repeats", "2"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "adjacency" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    bench = resolve("nb201")
    direct = smoothness(bench.features("adjacency"), bench.oracle.search,
                        np.random.default_rng(0))
    assert cells[1:4] == [f"{direct['nearest']:.3f}", f"{direct['nearest_10']:.3f}",
                          f"{direct['random']:.3f}"]
    # NB201 is smooth under one-hot edits: neighbours differ far less than random cells
    assert direct["nearest"] < direct["random"] / 2
    assert "|Δ| to one-edit neighbours:" in result.output
    assert "best 94.066" in result.output


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_sigterm_stops_a_command_even_where_sigint_is_ignored(sigint_ignored):
    """``kill`` takes Ctrl-C's path; a command started in the background by a
    non-interactive shell (``nohup latentnas ... &``) inherits SIGINT ignored, and there
    re-raising SIGINT would let the run go on."""
    import signal
    import subprocess
    import sys

    script = ("import os, signal, time\n"
              "from latentnas.terminal import terminate_like_ctrl_c\n"
              "terminate_like_ctrl_c()\n"
              "try:\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(3)\n"
              "    print('went on')\n"
              "except KeyboardInterrupt:\n"
              "    print('stopped')\n")

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, preexec_fn=ignore_sigint if sigint_ignored else None)
    assert out.stdout.strip() == "stopped", out.stdout + out.stderr


def test_an_interrupted_stored_bench_search_prints_the_command_that_continues_it(
        monkeypatch, capsys):
    import sys

    import typer

    from latentnas.terminal import interrupted

    argv = ["latentnas", "bench", "search", "--space", "nb201", "--searchers", "gp, re",
            "--out", "runs/store"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(typer.Exit) as stop:
        interrupted("interrupted")
    assert stop.value.exit_code == 130
    err = capsys.readouterr().err
    assert "continue with: latentnas bench search --space nb201 --searchers 'gp, re' " \
           "--out runs/store" in err.replace("\n", " ")
    # unstored searches are not kept, so there is nothing to continue
    monkeypatch.setattr(sys, "argv", argv[:-2])
    with pytest.raises(typer.Exit):
        interrupted("interrupted")
    assert "continue with" not in capsys.readouterr().err
