"""Reading YAML settings that a user (or anyone) wrote: one loader for experiment files,
cluster files and the YAML inside them.

PyYAML's safe loader builds no objects, but it still lets the last of two equal keys win
without a word, expands aliases without limit (a "billion laughs" file of a few hundred
bytes becomes gigabytes) and reads files of any size. This loader refuses all three with
one line naming the file: a key given twice, more than ``MAX_ALIASES`` aliases, a file over
its size limit, and text that is not UTF-8.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from latentnas.errors import ConfigError, short

#: aliases (``*name``) a settings file may use: real files use none or a few, and 16 keep
#: the worst expansion (3 ** (16 / 3) nodes per node) harmless
MAX_ALIASES = 16
#: bytes of an experiment file and of a cluster file (the shipped ones are under 20 kB)
MAX_BYTES = 1 << 20


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses duplicate keys."""

    def __init__(self, stream, where: str):
        super().__init__(stream)
        self.where, self.aliases = where, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"{self.where} uses more than {MAX_ALIASES} YAML aliases "
                                  "(*name); write the settings out instead")
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node):
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > 30:       # Python refuses past 4,300 digits; no setting needs 31
            raise ConfigError(f"{self.where}: a number of {digits:,} digits at line "
                              f"{node.start_mark.line + 1} is past any setting's range")
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue      # SafeLoader reports an unhashable key itself
                if key in seen:
                    raise ConfigError(
                        f"{self.where}: key {short(key)} is given twice (lines {seen[key]} "
                        f"and {key_node.start_mark.line + 1}); keep one")
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _load(text: str, where: str, many: bool):
    loader = _Loader(text, where)
    try:
        if many:
            docs = []
            while loader.check_data():
                docs.append(loader.get_data())
            return docs
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {where} as YAML: "
                          f"{' '.join(str(exc).split())[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{where} nests too deeply to be a settings file") from None
    finally:
        loader.dispose()


def loads(text: str, where: str, many: bool = False) -> Any:
    """The YAML ``text`` (every document of it with ``many``); ``where`` names it in
    errors."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{where} has {len(text):,} characters, more than a settings text "
                          f"may ({MAX_BYTES:,})")
    return _load(text, where, many)


def read_text(path: str, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of the settings file ``path``, with one-line errors for a path that
    is missing, a folder, too large or not text."""
    if not isinstance(path, str) or not os.path.exists(path):
        raise ConfigError(f"{what} {short(path)} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"{what} {short(path)} is a folder; give the file itself")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ConfigError(f"{what} {path} is {size:,} bytes, more than a settings file may "
                          f"be ({max_bytes:,}); is it the right file?")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start:,} is "
                          f"{data[exc.start]:#04x}); is it the right file?") from None


def load(path: str, what: str, many: bool = False) -> Any:
    """:func:`read_text` then :func:`loads`."""
    return loads(read_text(path, what), f"{what} {path}", many)
