"""What a cloud machine type holds (vCPUs, GPUs, memory), reasoned from its name.

AWS names are checked against the EC2 API model botocore ships (every instance type the
API accepts) when botocore is installed; GCP names against the grammar of Compute Engine
machine types. Sizes come from the naming rules both clouds document (an AWS ``Nxlarge``
has 4N vCPUs; a GCP ``FAMILY-standard-N`` has N) and, for GPU machines, whose GPU count
the name does not say, from a table. A name that is a machine type but whose facts are
not known here is *unchecked*, never passed silently: :func:`facts` returns
``Machine(known=False)`` and the validator reports it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """``valid``: the name is a machine type of its cloud; ``known``: its CPUs and GPUs
    are known here (``memory`` in GiB may still be None)."""

    name: str
    cloud: str
    valid: bool
    known: bool = False
    cpus: int = 0
    gpus: int = 0
    memory: float | None = None
    why: str = ""


# -- AWS -------------------------------------------------------------------------------------
_AWS = re.compile(r"(?P<family>[a-z][a-z0-9-]*)\.(?P<size>nano|micro|small|medium|large|"
                  r"xlarge|\d+xlarge|metal(?:-\d+xl)?)")
#: GPUs per size of the NVIDIA families (the name gives vCPUs, not GPUs)
_AWS_GPUS = {
    "g4dn": {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4,
             "16xlarge": 1, "metal": 8},
    **{f: {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4,
           "16xlarge": 1, "24xlarge": 4, "48xlarge": 8} for f in ("g5", "g6", "g6e")},
    "p3": {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}, "p3dn": {"24xlarge": 8},
    "p4d": {"24xlarge": 8}, "p4de": {"24xlarge": 8}, "p5": {"48xlarge": 8},
    "p5e": {"48xlarge": 8}, "p5en": {"48xlarge": 8},
}
#: GiB per vCPU of the general, compute and memory families (m, c, r and their variants)
_AWS_MEMORY = {"m": 4, "c": 2, "r": 8, "g5": 4, "g6": 4, "g4dn": 4, "t": 4}


@functools.lru_cache(maxsize=1)
def ec2_instance_types() -> frozenset[str] | None:
    """Every instance type of the EC2 API model botocore ships; None without botocore."""
    try:
        from botocore.loaders import Loader

        model = Loader().load_service_model("ec2", "service-2")
        return frozenset(model["shapes"]["InstanceType"]["enum"])
    except Exception:
        return None


def _aws(name: str) -> Machine:
    found = _AWS.fullmatch(name)
    catalogue = ec2_instance_types()
    if not found or (catalogue is not None and name not in catalogue):
        source = "the EC2 API model of botocore" if catalogue else "EC2's naming scheme"
        return Machine(name, "aws", False, why=f"not an EC2 instance type ({source})")
    family, size = found.group("family"), found.group("size")
    if size.endswith("xlarge"):
        cpus = 4 * int(size[:-6] or 1)
    elif size == "large":
        cpus = 2
    else:
        return Machine(name, "aws", True)      # metal, medium and smaller vary by family
    if family in _AWS_GPUS:
        gpus = _AWS_GPUS[family].get(size)
        if gpus is None:
            return Machine(name, "aws", True)
    elif family[0] in "gpf" or family.startswith(("inf", "trn", "dl", "vt")):
        return Machine(name, "aws", True)      # accelerators this table does not list
    else:
        gpus = 0
    per_cpu = _AWS_MEMORY.get(family, _AWS_MEMORY.get(family[0]) if re.fullmatch(
        r"[mcrt]\d+[a-z]*", family) else None)
    return Machine(name, "aws", True, True, cpus, gpus,
                   None if per_cpu is None else float(cpus * per_cpu))


# -- GCP -------------------------------------------------------------------------------------
_GCP = re.compile(r"(?P<family>[a-z]\d[a-z]?)-(?P<kind>standard|highmem|highcpu|megamem|"
                  r"ultramem|hypermem|highgpu|megagpu|ultragpu|edgegpu)-(?P<n>\d+)(?P<g>g)?"
                  r"(?:-(?:lssd|metal|nolssd))?")
_GCP_CUSTOM = re.compile(r"(?:(?P<family>[a-z]\d[a-z]?)-)?custom-(?P<n>\d+)-(?P<mb>\d+)"
                         r"(?:-ext)?")
_GCP_SHARED = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
_GCP_FAMILIES = {"n1", "n2", "n2d", "n4", "n4d", "c2", "c2d", "c3", "c3d", "c4", "c4a",
                 "c4d", "e2", "t2d", "t2a", "m1", "m2", "m3", "m4", "h3", "h4d", "z3", "g2",
                 "g4", "a2", "a3", "a4", "x4"}
#: GiB per vCPU by kind (N1 has its own)
_GCP_MEMORY = {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0}
_GCP_N1_MEMORY = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
_G2_GPUS = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
#: accelerator-optimized types: vCPUs, GPUs, GiB
_GCP_GPU_TYPES = {
    **{f"a2-highgpu-{n}g": (12 * n, n, 85.0 * n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": (96, 16, 1360.0),
    **{f"a2-ultragpu-{n}g": (12 * n, n, 170.0 * n) for n in (1, 2, 4, 8)},
    **{f"a3-highgpu-{n}g": (26 * n, n, 234.0 * n) for n in (1, 2, 4, 8)},
    "a3-megagpu-8g": (208, 8, 1872.0), "a3-edgegpu-8g": (208, 8, 1872.0),
    "a3-ultragpu-8g": (224, 8, 2952.0),
}


def _gcp(name: str, accelerators: int = 0) -> Machine:
    if name in _GCP_SHARED:
        return Machine(name, "gcp", True, True, _GCP_SHARED[name], accelerators)
    custom = _GCP_CUSTOM.fullmatch(name)
    if custom:
        return Machine(name, "gcp", True, True, int(custom.group("n")), accelerators,
                       int(custom.group("mb")) / 1024)
    found = _GCP.fullmatch(name)
    if not found:
        return Machine(name, "gcp", False, why="not a Compute Engine machine type "
                                               "(FAMILY-KIND-N, e.g. n2-standard-8)")
    family, kind, n = found.group("family"), found.group("kind"), int(found.group("n"))
    base = name.removesuffix("-lssd").removesuffix("-metal").removesuffix("-nolssd")
    if family not in _GCP_FAMILIES:
        return Machine(name, "gcp", True)
    if base in _GCP_GPU_TYPES:
        cpus, gpus, memory = _GCP_GPU_TYPES[base]
        return Machine(name, "gcp", True, True, cpus, gpus, memory)
    if found.group("g") or family in ("a2", "a3", "a4", "g4"):
        return Machine(name, "gcp", True)
    gpus = _G2_GPUS.get(n) if family == "g2" else accelerators
    if gpus is None:
        return Machine(name, "gcp", True)
    per_cpu = (_GCP_N1_MEMORY if family == "n1" else _GCP_MEMORY).get(kind)
    return Machine(name, "gcp", True, True, n, gpus, None if per_cpu is None else n * per_cpu)


def facts(cloud: str, name: object, accelerators: int = 0) -> Machine:
    """What ``name`` holds on ``cloud`` (``aws``, ``gcp``, or ``kubernetes``: either,
    told apart by the name's shape). ``accelerators``: GPUs attached on GCP
    (``guestAccelerators``), added to what the machine type has built in."""
    text = str(name)
    if cloud == "kubernetes":
        cloud = "aws" if "." in text else "gcp"
    return _aws(text) if cloud == "aws" else _gcp(text, accelerators)


def aws_region(text: str) -> bool:
    return re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d", text) is not None
