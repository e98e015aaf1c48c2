"""The ``latentnas`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from latentnas.errors import LatentNASError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Neural architecture search in a learned latent space (arch2vec).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
app.add_typer(bench_app, name="bench")
console = Console()


def fail(error: Exception) -> None:
    """Prints a one-line error and exits with status 2."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {error}", highlight=False)
    raise typer.Exit(2)


@app.command()
def spaces() -> None:
    """List search spaces, their sizes and the oracles available on this machine."""
    from latentnas.oracles import DATASETS
    from latentnas.oracles.nb101 import ENV_VAR
    from latentnas.spaces import get_space

    table = Table(title="Search spaces")
    for col in ("space", "cells", "nodes", "ops", "oracles (datasets)"):
        table.add_column(col)
    for name in ("nb201", "nb101", "nbgraph"):
        space = get_space(name)
        size = f"{space.size:,}" if space.size else "423,624 (sampled)"
        datasets = ", ".join(DATASETS[name][1])
        if name == "nb101":
            path = os.environ.get(ENV_VAR)
            have = path and os.path.isfile(path)
            datasets += (f" — tfrecord at {path}" if have
                         else f" — needs your tfrecord (--nb101-data or {ENV_VAR})")
        if name == "nbgraph":
            size += " (proteins: 2,021)"
        middle = [o for o in space.ops if o not in ("input", "output")]
        table.add_row(name, size, str(space.num_nodes), ", ".join(middle), datasets)
    console.print(table)


@app.command()
def query(
    space: str = typer.Argument(..., help="nb201, nbgraph or nb101"),
    cell: str = typer.Argument(..., help="arch string, tuple, 'links|ops' or JSON cell"),
    dataset: Optional[str] = typer.Option(None, help="dataset (default: the space's first)"),
    nb101_data: Optional[str] = typer.Option(None, help="path to the NB101 tfrecord"),
    as_json: bool = typer.Option(False, "--json", help="print the record as JSON"),
) -> None:
    """Print the oracle record of one cell."""
    from latentnas.oracles import get_oracle

    try:
        oracle = get_oracle(space, dataset, nb101_data=nb101_data)
        parsed = oracle.space.parse(cell)
        record = oracle.query(parsed)
    except LatentNASError as exc:
        fail(exc)
    record = {"cell": oracle.space.format(parsed), "oracle": oracle.info.name, **record}
    if as_json:
        typer.echo(json.dumps(record))
        return
    table = Table(show_header=False, title=oracle.info.name)
    labels = {"search": f"search ({oracle.info.search_metric})",
              "report": f"report ({oracle.info.report_metric})",
              "cost": f"cost ({oracle.info.cost_unit})"}
    for key, value in record.items():
        table.add_row(labels.get(key, key), f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)


@bench_app.command("oracles")
def bench_oracles(repeats: int = typer.Option(5, help="timed repetitions per figure")) -> None:
    """Load time (cold, in a fresh process) and per-query cost of every oracle here."""
    import subprocess

    import numpy as np

    from latentnas.oracles import get_oracle

    table = Table(title="Oracles")
    for col in ("oracle", "cells", "cold load s", "batch query µs/id", "single query µs"):
        table.add_column(col, justify="right")
    for space, dataset in [("nb201", None), *[("nbgraph", d) for d in ("cora", "arxiv", "proteins")]]:
        code = (f"import time; t=time.perf_counter(); from latentnas.oracles import get_oracle; "
                f"get_oracle({space!r}, {dataset!r}); print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        oracle = get_oracle(space, dataset)
        ids = np.random.default_rng(0).integers(0, len(oracle), 10_000)
        t = time.perf_counter()
        for _ in range(repeats):
            oracle.query_ids(ids)
        batch = (time.perf_counter() - t) / repeats / len(ids) * 1e6
        cells = [oracle.space.cells()[i] for i in ids[:1000]]
        t = time.perf_counter()
        for c in cells:
            oracle.query(c)
        single = (time.perf_counter() - t) / len(cells) * 1e6
        table.add_row(oracle.info.name, f"{len(oracle):,}", f"{cold:.2f}", f"{batch:.2f}",
                      f"{single:.1f}")
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
