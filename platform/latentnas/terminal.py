"""How the command line talks to a terminal: one console, one-line errors, interruptions
with the line that continues them, flags shared by several commands, and the live displays
of long work (pretraining, a Ray experiment). Commands live in ``latentnas.cli`` (the
workflow) and ``latentnas.cli_bench`` (``latentnas bench``, measurements)."""

from __future__ import annotations

import functools
import shlex
import signal
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from latentnas.benchmarks import resolve
from latentnas.errors import (ConfigError, InterruptedRunError, LatentNASError, short,
                              storage_error)
from latentnas.models import MAX_SEED, pretrain_config, pretrain_model
from latentnas.progress import TrialLines
from latentnas.results.store import stored_searches
from latentnas.spaces.nb101_enum import EXPECTED as NB101_CELLS
from latentnas.storage import probe

#: tables keep their natural width when written to a pipe or a file (Rich would cut them
#: to 80 columns and truncate values to "0.4…")
console = Console(width=None if sys.stdout.isatty() else 1000)


def fail(error: Exception) -> None:
    """Prints a one-line error and exits with status 2."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}",
                                               highlight=False)
    raise typer.Exit(2)


def command(group: typer.Typer, name: str | None = None):
    """Registers a command whose platform errors become one line (exit 2), whose refusals
    by the environment (``OSError``: permissions, a full or read-only disk) become one line
    naming the path and the fix, and whose interruption (Ctrl-C or SIGTERM) exits 130 with
    what was kept."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            previous = terminate_like_ctrl_c()
            try:
                return fn(*args, **kwargs)
            except InterruptedRunError as exc:
                interrupted(str(exc))
            except LatentNASError as exc:
                fail(exc)
            except OSError as exc:
                fail(storage_error(exc))
            except MemoryError:
                fail(LatentNASError("ran out of memory; ask for less (fewer --seeds, a smaller "
                                    "--budget, --batch-size or --cells)"))
            except KeyboardInterrupt:
                interrupted("interrupted; files are written atomically, so nothing half "
                            "written was left behind")
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

        group.command(name)(run)
        return run

    return wrap


def terminate_like_ctrl_c():
    """Makes SIGTERM (``kill``, a scheduler's stop) take the path of Ctrl-C: the work stops
    cleanly and an interrupted run prints the line that resumes it. Returns the handler it
    replaced (``None`` off the main thread, where handlers cannot be set). Called again
    after Ray starts, whose driver installs its own handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _like_ctrl_c)


def _like_ctrl_c(signum, frame) -> None:
    """SIGTERM's handler: calls whatever handles Ctrl-C now (Python's, Ray's), then
    raises ``KeyboardInterrupt`` if that did not. Re-raising SIGINT instead would do
    nothing where SIGINT is ignored, as it is for a command started in the background by
    a non-interactive shell (``nohup latentnas ... &``): the run would go on after
    ``kill``."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    raise KeyboardInterrupt


def interrupted(message: str) -> None:
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"[bold yellow]{escape(message)}[/]", highlight=False)
    if sys.argv[1:2] == ["run"]:
        argv = [a for a in sys.argv[1:] if a != "--resume"]
        err.print(f"continue with: latentnas {shlex.join(argv)} --resume", highlight=False)
    elif sys.argv[1:3] == ["bench", "search"] and any(a.startswith("--out") for a in sys.argv):
        # a stored plan resumes by running it again: its finished searches are skipped
        err.print(f"continue with: latentnas {shlex.join(sys.argv[1:])} (the stored "
                  "searches are kept and skipped)", highlight=False)
    raise typer.Exit(130)


def parse_budgets(text: str | None, flag: str = "--at") -> list[int] | None:
    """``--at 50,100,150`` -> ``[50, 100, 150]``: at least one positive whole number."""
    if text is None:
        return None
    fix = f"{flag} takes comma-separated numbers of queries such as 50,100,150"
    if len(text) > 1000:
        raise ConfigError(f"{fix}; got {short(text)}")
    try:
        budgets = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"{fix}, got {short(text)}") from None
    if not budgets or min(budgets) < 1:
        raise ConfigError(f"{fix} (each at least 1), got {short(text)}")
    return budgets


def positive(name: str, value: int | float | None, most: float | None = None) -> None:
    """A flag that must be a positive finite number, at most ``most``."""
    if value is None:
        return
    flag = f"--{name.replace('_', '-')}"
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{flag} must be a positive number, got {short(value)}")
    if most is not None and value > most:
        raise ConfigError(f"{flag} {short(value)} is past the largest this command can use, "
                          f"{most:,}")


def group_option(text: str | None) -> int | str | None:
    """``--searches-per-trial``: ``auto`` or a whole number (checked by the config)."""
    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--searches-per-trial must be auto or a whole number, got "
                          f"{short(text)}") from None


def seed_flag(value: int, name: str = "seed") -> int:
    """A ``--seed`` flag: a seed NumPy and PyTorch both take (0 to 2**31 - 1)."""
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"--{name} {short(value)} is not a seed: give a whole number from 0 "
                          f"to {MAX_SEED:,}")
    return value


# -- flags shared by several commands ---------------------------------------------------
MODELS = typer.Option(5, help="pretrained models per learned encoding: search seed s "
                      "searches the one pretrained with seed 3 + s mod MODELS, so intervals "
                      "include the encoder's training variance (1: every seed the model of "
                      "seed 3)")
MIX = typer.Option(False, "--mix-versions", help="store this run's searches beside stored "
                   "ones made by other code, models or searcher options (results shows the "
                   "versions apart)")


# -- pretraining ------------------------------------------------------------------------
ENCODER = typer.Option("arch2vec", help="learned encoder: arch2vec, mpnn, barlow, jepa or an "
                       "installed plug-in (latentnas encoders)")
NODE_POSITIONS = typer.Option(
    None, "--node-positions/--no-node-positions",
    help="append each node's position to its features (not in the reference): lets the "
         "decoder reconstruct graphs with nodes the GIN cannot tell apart; embeddings then "
         "follow the node order (default: the space's default)")


def pretrain_with_progress(space: str, epochs, batch_size, lr, device, out, cells, force, seed,
                           reference, epoch_samples: int = 1000,
                           node_positions: bool | None = None, encoder: str = "arch2vec"):
    """``latentnas pretrain``'s settings turned into a model (``models.pretrain_model``),
    with a bar of epochs, loss and held-out quality."""
    bench = resolve(space)
    if cells is not None and cells > NB101_CELLS:
        raise ConfigError(f"--cells {cells:,} is more than NAS-Bench-101's {NB101_CELLS:,} "
                          "cells")
    if cells is not None and bench.info.space not in ("nb101", "nb101-full"):
        raise ConfigError(f"--cells samples NAS-Bench-101; {bench.info.space} is pretrained on "
                          f"all its {bench.info.cells:,} cells: leave --cells out")
    if out is not None:
        probe(out, what="--out")
    config = pretrain_config(bench.info, encoder, reference=reference,
                             node_positions=node_positions, epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed)
    progress = Progress(TextColumn(f"[bold]pretrain {encoder} " + "{task.fields[space]}"),
                        BarColumn(),
                        TextColumn("epoch {task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                        console=console, transient=False)
    task = progress.add_task("pretrain", total=config.epochs, space=bench.name, status="")

    def on_epoch(row):
        valid = f"  valid {row['validity']:.0%}" if "validity" in row else ""
        quality = (f"exact {row['exact_acc']:.2%}{valid}" if "exact_acc" in row else
                   f"distinct {row['distinct']:.1%}")
        progress.update(task, advance=1, status=f"loss {row['loss']:.4f}  {quality}")

    try:
        return pretrain_model(bench, encoder, config, out=out, device=device, num_cells=cells,
                              force=force, on_epoch=on_epoch, epoch_samples=epoch_samples,
                              on_start=progress.start)
    finally:
        progress.stop()


# -- experiments on Ray -----------------------------------------------------------------
def run_with_progress(cfg, total: int, resume: bool, overwrite: bool, mix_versions: bool):
    """Runs the experiment with a live Rich display fed by a Tune callback."""
    # Ray is imported only by the commands that run on it
    from latentnas.experiment import ProgressCallback, run_experiment

    done = 0 if overwrite else len(stored_searches(cfg.results_root(), cfg.name))
    if not console.is_terminal:       # a log or a pipe: a line now and then, not a bar
        lines = TrialLines(total, done)
        return run_experiment(cfg, resume=resume, overwrite=overwrite,
                              callbacks=[ProgressCallback(total, lines, done)],
                              mix_versions=mix_versions)
    with Progress(TextColumn("[bold]searches"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                  console=console) as progress:
        task = progress.add_task("run", total=total, completed=done, rate="", best="")

        def update(state):
            best = "  ".join(f"{escape(k)} {v:.3f}" for k, v in sorted(state["best"].items()))
            progress.update(task, completed=state["done"],
                            rate=f"{state['queries']:,} queries, {state['qps']:.0f}/s", best=best)

        return run_experiment(cfg, resume=resume, overwrite=overwrite,
                              callbacks=[ProgressCallback(total, update, done)],
                              mix_versions=mix_versions)


def run_live(cfg, resume: bool, overwrite: bool, address: str | None = None,
             mix_versions: bool = False):
    """Runs an experiment with a live display and prints what it did."""
    # Ray is imported only by the commands that run on it (a cold import costs seconds)
    import ray

    from latentnas.experiment import check_overwritable, init_ray

    if resume and overwrite:
        raise ConfigError("--resume continues stored work and --overwrite deletes it; "
                          "choose one")
    if overwrite:
        check_overwritable(cfg.tune_path())
    cfg.benchmark.oracle          # missing or broken benchmark data fails before Ray starts
    probe(cfg.storage_root(), what="--storage")   # a store that does not answer: before Ray
    probe(cfg.results_root(), what="results store")
    init_ray(address)
    terminate_like_ctrl_c()       # Ray's driver replaced the handler
    total = len(cfg.specs())
    console.print(f"experiment [bold]{escape(cfg.name)}[/]: {total} searches on "
                  f"{cfg.space}/{cfg.dataset}, {cfg.budget} queries each, "
                  f"{cfg.cpus_per_trial:g} CPU per trial; results -> {cfg.results_root()}")
    result = run_with_progress(cfg, total, resume, overwrite, mix_versions)
    if result.stored:
        console.print(f"{result.stored} of {result.total} searches were already stored and "
                      "were not run again")
    if result.trials:
        cpus = ray.cluster_resources().get("CPU", 1)
        busy = result.trial_cpu_seconds / max(result.wall_seconds * cpus, 1e-9)
        console.print(f"{result.trials} searches in {result.tune_trials} trials, "
                      f"{result.wall_seconds:.1f} s wall on {cpus:g} CPUs; search work "
                      f"{result.trial_cpu_seconds:.1f} CPU s ({busy:.0%} of the CPU time); "
                      f"{result.errored} trials errored")
    for line in result.errors:
        console.print(f"[red]errored:[/] {escape(line)}")
    return result
