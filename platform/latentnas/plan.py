"""What to run: searcher specs, their grammar, and the plan of searches.

One grammar for searchers, shared by the flags, experiment files, the local benchmark and
the Ray experiment. A searcher is written ``name`` or ``name(key=value, ...)`` (values are
YAML scalars), several separated by commas, or in a file as a mapping ``{name: {key:
value}}``; both forms give the same :class:`SearcherConfig`, whose options are checked
against the searcher's declared schema (``searchers.check_options``) when it is read.
``preset=NAME`` selects a named option set for the space searched (``latentnas.presets``).
A suffix ``@enc+enc`` (``bo(preset=paper)@arch2vec+supervised``) runs that searcher under
those encodings only, instead of every encoding of the plan.

:class:`SearchPlan` is everything that decides which searches run and what they return:
the benchmark, the searchers, the encodings, the seeds and the budget. It validates all of
it (names, types, ranges, budget against the space's size) before anything starts, and its
:meth:`~SearchPlan.identity` is what an experiment records with its results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from latentnas import benchmarks, models, presets
from latentnas.errors import ConfigError, LatentNASError, short
from latentnas.models import MAX_SEED, PRETRAIN_SEED
from latentnas.search import SearchSpec
from latentnas.spaces import get_space
from searchers import SearcherError, available, check_options, get_searcher

#: the longest searcher list the grammar reads (a few hundred characters is plenty)
MAX_SPEC_TEXT = 4_000
#: seeds are split: tuning (sweeps that chose defaults) uses seeds below REPORT_SEED,
#: every figure the project reports uses REPORT_SEED, REPORT_SEED + 1, ... (1000-1099)
REPORT_SEED = 1000
#: a plan runs at most MAX_SEEDS seeds, each at most ``models.MAX_SEED``
MAX_SEEDS = 100_000
_NAME = re.compile(r"[A-Za-z_][\w.-]*")
_KEY = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class SearcherConfig:
    """A searcher name with its (validated) options, e.g. ``gp`` with ``kernel=matern``."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    #: the encodings this searcher runs under (None: every encoding of the plan)
    only: tuple[str, ...] | None = None

    @property
    def opts(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        """``name:key=value,...`` (options sorted): the searcher column of the results."""
        return SearchSpec(self.name, "none", 0, 1, self.opts).name

    @property
    def key(self) -> str:
        """The label with the encodings it is restricted to (what identifies it in a plan)."""
        return self.label + (f"@{'+'.join(self.only)}" if self.only is not None else "")

    @property
    def cls(self):
        return get_searcher(self.name)

    def encodings(self, encodings: list[str]) -> list[str]:
        """The encodings this searcher runs under: ``none`` for strategies that ignore
        features, otherwise each feature encoding given (or the strategy's own
        ``default_encodings`` where the spec names none), plus ``supervised`` for those
        that learn their own encoding from the cell graphs."""
        cls = self.cls
        if "features" not in cls.requires and not cls.learns_encoding:
            return ["none"]
        if self.only is not None:
            encodings = list(self.only)
        elif cls.default_encodings is not None:
            encodings = list(cls.default_encodings)
        out = [e for e in encodings if models.parse(e).has_features]
        if cls.learns_encoding and "supervised" in encodings:
            out.append("supervised")
        return out


def searcher_config(name: Any, options: Any = None, only: Any = None) -> SearcherConfig:
    """A checked spec: known searcher, options valid for it (``preset`` checked later,
    against the space), the encodings it is restricted to (``only``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"searcher name {short(name)} is not a name; write e.g. 'gp' or "
                          "'gp(kernel=matern)'")
    options = dict(options or {})
    preset = options.pop("preset", None)
    try:
        checked = check_options(name, options)
    except SearcherError as exc:
        raise ConfigError(str(exc)) from None
    if preset is not None:
        if not isinstance(preset, str):
            raise ConfigError(f"preset of searcher {name!r} must be a name, got {short(preset)}")
        checked["preset"] = preset
    if only is not None:
        only = tuple(read_encodings(only))
        cls = SearcherConfig(name).cls
        if "features" not in cls.requires and not cls.learns_encoding:
            raise ConfigError(f"searcher {name!r} ignores encodings; drop its @{'+'.join(only)}")
    return SearcherConfig(name, tuple(sorted(checked.items())), only)


def parse_searchers(text: str) -> list[SearcherConfig]:
    """``"random, re, gp(kernel=matern, local=0.1)"`` -> specs, in linear time."""
    if not isinstance(text, str):
        raise ConfigError(f"searchers must be text such as 'random, gp', got {short(text)}")
    if len(text) > MAX_SPEC_TEXT:
        raise ConfigError(f"searcher list of {len(text):,} characters is longer than "
                          f"{MAX_SPEC_TEXT:,}; list searchers as 'random, re, gp(kernel=matern)'")
    items, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise ConfigError(f"nested '(' at character {k + 1} of {short(text)}; "
                                  "options are key=value pairs: gp(kernel=matern)")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unmatched ')' at character {k + 1} of {short(text)}")
        elif ch == "," and depth == 0:
            items.append(text[start:k])
            start = k + 1
    if depth:
        raise ConfigError(f"unclosed '(' in {short(text)}; write name(key=value, ...)")
    items.append(text[start:])
    out = []
    for item in items:
        item = item.strip()
        if not item:
            if len(items) == 1:
                break
            raise ConfigError(f"empty searcher between commas in {short(text)}")
        out.append(_parse_item(item))
    if not out:
        raise ConfigError(f"no searchers given; available: {', '.join(available())}")
    return out


def _parse_item(item: str) -> SearcherConfig:
    item, at, only = item.rpartition("@") if "@" in item else (item, "", "")
    if at and ("(" in only or ")" in only or not only.strip()):
        raise ConfigError(f"after '@' come encodings joined by '+', e.g. "
                          f"bo@arch2vec+supervised; got {short(only)}")
    name, paren, rest = item.partition("(")
    name = name.strip()
    if paren and not rest.rstrip().endswith(")"):
        raise ConfigError(f"text after ')' in searcher {short(item)}; write name(key=value, ...)")
    options: dict[str, Any] = {}
    for pair in rest.rstrip()[:-1].split(",") if paren else []:
        if not pair.strip():
            continue
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise ConfigError(f"option {short(pair.strip())} of searcher {short(name)} needs "
                              "key=value, e.g. gp(kernel=matern)")
        if key in options:
            raise ConfigError(f"option {key!r} of searcher {name!r} is given twice")
        options[key] = _scalar(value.strip(), key, name)
    return searcher_config(name, options, only.split("+") if at else None)


def _scalar(text: str, key: str, name: str) -> Any:
    if not text:
        raise ConfigError(f"option {key!r} of searcher {name!r} has no value; write {key}=VALUE")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if value is None or isinstance(value, (list, dict)):
        raise ConfigError(f"option {key}={short(text)} of searcher {name!r} is not a single "
                          "value (a number, true/false or a word)")
    return value


def read_searchers(value: Any) -> list[SearcherConfig]:
    """Specs from text, a list of texts and ``{name: options}`` mappings, or specs."""
    if isinstance(value, str):
        return parse_searchers(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"searchers must be text or a list, got {short(value)}")
    out: list[SearcherConfig] = []
    for item in value:
        if isinstance(item, SearcherConfig):
            out.append(item)
        elif isinstance(item, str):
            out.extend(parse_searchers(item))
        elif isinstance(item, dict) and len(set(item) - {"encodings"}) == 1:
            only = item.get("encodings")
            (name, opts), = ((k, v) for k, v in item.items() if k != "encodings")
            if opts is not None and not isinstance(opts, dict):
                raise ConfigError(f"options of searcher {short(name)} must be a mapping, "
                                  f"e.g. {{{name}: {{key: value}}}}; got {short(opts)}")
            out.append(searcher_config(name, opts, only))
        else:
            raise ConfigError(f"a searcher is 'name', 'name(key=value)' or {{name: {{key: "
                              f"value}}}} (optionally with encodings: [...]), got {short(item)}")
    if not out:
        raise ConfigError("no searchers given")
    return out


def read_encodings(value: Any) -> list[str]:
    """``"arch2vec, adjacency"`` or a list of encodings and model references
    (``latentnas.models``: ``arch2vec:reference``, ``./my-model``) -> checked names, in
    order (a model directory is checked against the space later, by the plan)."""
    if isinstance(value, str):
        value = [e.strip() for e in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(e, str) for e in value):
        raise ConfigError(f"encodings must be names such as 'arch2vec, adjacency', "
                          f"got {short(value)}")
    names = [models.parse(e).text for e in value if e.strip()]
    if not names:
        raise ConfigError(f"no encodings given; choose from {', '.join(models.names())} or "
                          "a model directory")
    return list(dict.fromkeys(names))


class SearchPlan(BaseModel):
    """Which searches run: (searcher × encoding) × seeds on one benchmark, each ``budget``
    queries. Every field is checked on construction (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True,
                              allow_inf_nan=False,
                              validate_default=True)

    space: str = "nb201"
    dataset: str | None = None
    searchers: list[SearcherConfig] = ["random", "re", "reinforce", "gp"]  # type: ignore
    encodings: list[str] = ["arch2vec"]
    seeds: Annotated[int, Ge(1), Le(MAX_SEEDS)] = 10
    first_seed: Annotated[int, Ge(0), Le(MAX_SEED)] = 0
    budget: Annotated[int, Ge(1)] = 150
    #: the NB101 tfrecord (dataset tfrecord of nb101-full, or space nb101)
    nb101_data: str | None = None
    #: training-oracle settings (nb101-full), see latentnas.oracles.training.TrainingSettings
    training: dict[str, Any] = {}
    #: models of each learned encoding (arch2vec, mpnn, ...) pretrained with seeds 3, 4,
    #: ..., 3+k-1; search seed s uses model 3 + s mod k, so intervals over seeds include the
    #: encoder's training variance (1: every seed searches the model of seed 3). A model
    #: directory is one model, searched by every seed.
    encoder_models: Annotated[int, Ge(1), Le(100)] = 5

    def __init__(self, **settings: Any):
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            raise validation_error(exc, "", list(type(self).model_fields)) from None

    @classmethod
    def build(cls, where: str = "", **settings: Any):
        """An instance from ``settings``; a one-line error if invalid, naming ``where``
        (the file the settings came from)."""
        try:
            return cls(**settings)
        except LatentNASError as exc:
            if not where:
                raise
            raise ConfigError(f"{exc} (in {where})") from None

    @field_validator("searchers", mode="before")
    @classmethod
    def _searchers(cls, value):
        return read_searchers(value)

    @field_validator("encodings", mode="before")
    @classmethod
    def _encodings(cls, value):
        return read_encodings(value)

    @model_validator(mode="after")
    def _consistent(self):
        info, self.dataset = benchmarks.check(self.space, self.dataset)
        self.space = info.space
        if not info.searchable:
            raise ConfigError(f"space {info.space} is sampled, not enumerated: searches need "
                              f"one of {', '.join(benchmarks.SEARCHABLE)} (nb101-full for "
                              "NAS-Bench-101)")
        if self.first_seed + self.seeds - 1 > MAX_SEED:
            raise ConfigError(f"seeds {self.first_seed:,} to {self.first_seed + self.seeds - 1:,}"
                              f" pass the largest seed, {MAX_SEED:,}; lower --first-seed")
        if self.budget > info.cells:
            raise ConfigError(f"budget {self.budget:,} exceeds the {info.cells:,} cells of "
                              f"{info.space}; a search queries each cell at most once")
        if self.training:
            if info.space != "nb101-full" or self.dataset not in ("digits", "cifar10"):
                raise ConfigError(f"training settings apply to the training oracle (space "
                                  f"nb101-full, dataset digits or cifar10), not to "
                                  f"{info.space}/{self.dataset}: remove training:")
            _check_training(self.training)
        if self.nb101_data is not None and not (info.space == "nb101-full"
                                                and self.dataset == "tfrecord"):
            raise ConfigError(f"nb101_data is the NAS-Bench-101 tfrecord of space nb101-full "
                              f"with dataset tfrecord; {info.space}/{self.dataset} does not "
                              "read it: remove it")
        for spec in self.searchers:
            for key in spec.cls.query_options:
                given = spec.opts.get(key)
                if isinstance(given, int) and given > self.budget:
                    raise ConfigError(f"searcher {spec.label!r}: {key}={given:,} exceeds the "
                                      f"budget of {self.budget:,} queries, so the search would "
                                      f"never get past it; lower {key} or raise --budget")
            if "preset" in spec.opts:
                searcher_config(spec.name, presets.expand(spec.name, spec.opts, info.space))
        used_encodings = {e for s in self.searchers for e in s.encodings(self.encodings)}
        space = None
        for e in sorted(used_encodings):
            enc = models.parse(e)
            if enc.kind == "path":
                space = space or get_space(info.space)
                models.check(enc, space)
        if "encodings" in self.model_fields_set:
            used = {e for s in self.searchers for e in s.encodings(self.encodings)}
            idle = [e for e in self.encodings if e not in used]
            if idle:
                ignoring = [s.label for s in self.searchers
                            if s.encodings(self.encodings) == ["none"]]
                own = [f"{s.label} runs on {'+'.join(s.cls.default_encodings)}"
                       for s in self.searchers
                       if s.only is None and s.cls.default_encodings is not None]
                why = "; ".join(([f"{', '.join(ignoring)} ignore encodings"] if ignoring
                                 else []) + own)
                raise ConfigError(
                    f"encoding {idle[0]!r} is used by none of the searchers "
                    f"({', '.join(s.label for s in self.searchers)})"
                    + (f": {why}" if why else "")
                    + "; 'supervised' needs a searcher that learns its own encoding (bo)")
        for spec in self.searchers:
            if spec.only is not None and not spec.encodings(self.encodings):
                raise ConfigError(f"searcher {spec.label}@{'+'.join(spec.only)} has none of "
                                  "its encodings among those it can use")
        pairs = [(s.label, e) for s in self.searchers for e in s.encodings(self.encodings)]
        dup = next((p for p in pairs if pairs.count(p) > 1), None)
        if dup:
            raise ConfigError(f"searcher {dup[0]!r} under encoding {dup[1]!r} is listed twice")
        return self

    def specs(self) -> list[SearchSpec]:
        """Every (searcher, encoding) × seed."""
        out = []
        for s in self.searchers:
            for enc in s.encodings(self.encodings):
                out.extend(SearchSpec(s.name, enc, seed, self.budget, s.opts,
                                      self.encoder_seed(enc, seed))
                           for seed in range(self.first_seed, self.first_seed + self.seeds))
        return out

    def encoder_seed(self, encoding: str, seed: int) -> int | None:
        """The pretraining seed of the model a search with ``seed`` uses: ``3 + seed mod
        k`` for a learned encoder's default or reference models, ``None`` for encodings
        without such models (fixed ones, a model directory)."""
        if not models.parse(encoding).seeded:
            return None
        return PRETRAIN_SEED + seed % self.encoder_models

    @property
    def benchmark(self):
        return benchmarks.resolve(self.space, self.dataset, nb101_data=self.nb101_data,
                       training=self.training)

    def identity(self) -> dict[str, Any]:
        """What the results of this plan depend on (stored with an experiment)."""
        out = {"space": self.space, "dataset": self.dataset,
               "searchers": [s.key for s in self.searchers],
               "encodings": sorted({spec.encoding for spec in self.specs()}),
               "seeds": [self.first_seed, self.first_seed + self.seeds - 1],
               "budget": self.budget}
        if self.training:
            out["training"] = dict(sorted(self.training.items()))
        if any(models.parse(e).seeded for e in out["encodings"]):
            out["encoder_models"] = self.encoder_models
        return out

    def model_seeds(self) -> list[tuple[str, int | None]]:
        """Every ``(encoding, pretraining seed)`` the plan's searches use."""
        return sorted({(s.encoding, s.encoder_seed) for s in self.specs()},
                      key=lambda p: (p[0], -1 if p[1] is None else p[1]))


def _check_training(settings: dict) -> None:
    """Keys, types and ranges of training-oracle settings (``TrainingSettings``)."""
    from dataclasses import fields

    from pydantic import TypeAdapter

    from latentnas.oracles.training import TrainingSettings

    known = {f.name for f in fields(TrainingSettings)} - {"dataset"}
    for key in settings:
        if key not in known:
            raise ConfigError(f"unknown training setting {short(key)}; known: "
                              f"{', '.join(sorted(known))}")
    try:
        TypeAdapter(TrainingSettings).validate_python(settings)
    except ValidationError as exc:
        error = validation_error(exc)
        raise ConfigError(f"training: {error}") from None


def validation_error(exc: ValidationError, where: str = "",
                     known: list[str] | None = None) -> LatentNASError:
    """One line from a pydantic error: the setting, its value and what it must be (or
    the platform's own error raised by a validator); ``known`` settings are suggested for
    an unknown one."""
    first = exc.errors()[0]
    original = (first.get("ctx") or {}).get("error")
    if isinstance(original, LatentNASError):
        return original
    loc = ".".join(str(p) for p in first["loc"]) or "settings"
    suffix = f" (in {where})" if where else ""
    if first["type"] == "extra_forbidden":
        import difflib

        near = difflib.get_close_matches(loc, known or [], n=1)
        hint = f"; did you mean {near[0]!r}?" if near else \
            (f"; known: {', '.join(sorted(known))}" if known else "")
        return ConfigError(f"unknown setting {short(loc)}{suffix}{hint}")
    if first["type"] == "missing":
        return ConfigError(f"setting {loc!r} is missing{suffix}")
    message = first["msg"].replace("Input should be ", "must be ").replace("Value error, ", "")
    return ConfigError(f"{loc}={short(first.get('input'))}: {message}{suffix}")
