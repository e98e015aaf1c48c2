"""Oracles: the shipped benchmark tables and the NB101 tfrecord reader."""

from __future__ import annotations

import numpy as np
import pytest

from latentnas.errors import (CorruptDataError, MissingDataError, NotInBenchmarkError,
                              UnknownNameError)
from latentnas.oracles import get_oracle
from latentnas.oracles.nbgraph import DATASETS

from .nb101_fixture import write_fixture

BEST_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_nb201_global_optimum_is_the_known_cell():
    oracle = get_oracle("nb201")
    record = oracle.query(oracle.space.parse(BEST_NB201))
    assert record["report"] == pytest.approx(94.0664)
    assert oracle.optimum_report == pytest.approx(94.0664)
    assert int(np.argmax(oracle.report)) == record["id"]
    assert "no validation split" in oracle.info.notes
    assert np.array_equal(oracle.search, oracle.report)


def test_nb201_matches_the_package_pickle_entry_by_entry():
    from latentnas.oracles.nb201 import _Unpickler, data_path

    with open(data_path(), "rb") as f:
        raw = _Unpickler(f).load()
    oracle = get_oracle("nb201")
    rng = np.random.default_rng(0)
    keys = list(raw)
    for k in rng.choice(len(keys), 200, replace=False):
        key = keys[k]
        rec = oracle.query(oracle.space.from_tuple(key))
        assert rec["report"] == raw[key].baseline_accuracy
        assert rec["analog_accuracy"] == raw[key].analog_accuracy


def test_oracle_is_loaded_once_per_process():
    assert get_oracle("nb201") is get_oracle("nb201")


def test_oracle_arrays_cannot_be_modified():
    oracle = get_oracle("nb201")
    with pytest.raises(ValueError):
        oracle.report[0] = 100.0


@pytest.mark.parametrize("dataset", DATASETS)
def test_nbgraph_tables_line_up_with_the_package(dataset):
    from nas_bench_graph import light_read

    oracle = get_oracle("nbgraph", dataset)
    bench = light_read(dataset)
    assert len(oracle) == len(bench)
    hashes = oracle.space.valid_hashes()
    for i in np.random.default_rng(1).choice(len(oracle), 50, replace=False):
        entry = bench[int(hashes[i])]
        rec = oracle.query_ids([i]).record(0)
        assert rec["search"] == entry["valid_perf"] and rec["report"] == entry["perf"]
        assert rec["latency"] == entry["latency"]


def test_nbgraph_query_by_cell_in_any_labelling():
    oracle = get_oracle("nbgraph", "arxiv")
    cell = oracle.space.parse("0,1,2,3|gcn,gin,skip,sage")
    same = oracle.space.parse("0,1,2,3|gcn,gin,skip,sage")
    assert oracle.query(cell) == oracle.query(same)
    assert oracle.info.search_metric == "valid_perf"


def test_batched_query_rejects_unknown_ids():
    with pytest.raises(NotInBenchmarkError, match="outside 0..15624"):
        get_oracle("nb201").query_ids([0, 15_625])


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UnknownNameError, match="unknown nbgraph dataset 'karate'; choose one of: cora"):
        get_oracle("nbgraph", "karate")


# -- NAS-Bench-101 from a tfrecord -----------------------------------------------------

@pytest.fixture()
def nb101_file(tmp_path, nb101):
    cells = nb101.sample(np.random.default_rng(3), 25)
    unique = list({nb101.canonical_hash(c): c for c in cells}.values())
    path = tmp_path / "nasbench_fixture.tfrecord"
    truth = write_fixture(path, unique, epochs=(36, 108))
    return str(path), unique, truth


def test_nb101_reader_returns_official_records(nb101_file, nb101):
    from latentnas.oracles.nb101 import load_nb101

    path, cells, truth = nb101_file
    oracle = load_nb101(path, 108)
    assert len(oracle) == len(cells)
    for cell in cells:
        rec = oracle.query(cell)
        runs = truth[nb101.canonical_hash(cell)][108]
        assert rec["search"] == pytest.approx(np.mean([r[0] for r in runs]))
        assert rec["report"] == pytest.approx(np.mean([r[1] for r in runs]))
        assert rec["cost"] == pytest.approx(np.mean([r[2] for r in runs]))
        assert rec["params"] == runs[0][3] and rec["repeats"] == 3
    assert {nb101.canonical_hash(c) for c in oracle.cells} == set(truth)
    assert [oracle.index(c) for c in oracle.cells] == list(range(len(oracle)))
    short = load_nb101(path, 36)
    assert short.query(cells[0])["cost"] < oracle.query(cells[0])["cost"]


def test_nb101_reader_caches_parsed_table(nb101_file, tmp_path):
    import os

    from latentnas.oracles import nb101 as mod

    path, _, _ = nb101_file
    first = mod.load_table(path)
    cache = [f for f in os.listdir(os.environ["LATENTNAS_CACHE"]) if f.endswith(".parquet")]
    assert len(cache) == 1
    assert mod.load_table(path).equals(first)


def test_nb101_truncated_file_is_reported(nb101_file, tmp_path):
    from latentnas.oracles.nb101 import parse_tfrecord

    path, _, _ = nb101_file
    data = open(path, "rb").read()
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(data[: len(data) - 7])
    with pytest.raises(CorruptDataError, match="truncated"):
        parse_tfrecord(str(cut))


def test_nb101_flipped_byte_fails_checksum(nb101_file, tmp_path):
    from latentnas.oracles.nb101 import parse_tfrecord

    path, _, _ = nb101_file
    data = bytearray(open(path, "rb").read())
    data[40] ^= 0xFF
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="checksum"):
        parse_tfrecord(str(bad))


def test_nb101_missing_file_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("LATENTNAS_NB101_DATA", raising=False)
    with pytest.raises(MissingDataError, match="LATENTNAS_NB101_DATA") as err:
        get_oracle("nb101")
    assert "google-research/nasbench" in str(err.value) and "--nb101-data" in str(err.value)
    with pytest.raises(MissingDataError, match="does not exist"):
        get_oracle("nb101", nb101_data=str(tmp_path / "nope.tfrecord"))


def test_nb101_cell_absent_from_table_is_named(nb101_file, nb101):
    from latentnas.oracles.nb101 import load_nb101

    path, cells, _ = nb101_file
    oracle = load_nb101(path, 108)
    known = {nb101.canonical_hash(c) for c in cells}
    other = next(c for c in nb101.sample(np.random.default_rng(99), 50)
                 if nb101.canonical_hash(c) not in known)
    with pytest.raises(NotInBenchmarkError, match="no entry"):
        oracle.query(other)
