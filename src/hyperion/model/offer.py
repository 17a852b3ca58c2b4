"""Offers of cloud GPU capacity and the price catalog that holds them: pure value types.

Glossary:
- *offer* (``Offer``): one machine type you can rent with GPUs, in one region (and, for providers
  priced per zone, one zone), with its on-demand price and, where the source gives one, its spot
  price, both in USD per hour for the whole machine.
- *GPU type*: a normalised accelerator name (``A100``, ``A100-80GB``, ``H100``, ``L4`` ...), the
  same spelling for every provider, made by ``normalise_gpu`` from the names the sources use.
- *catalog* (``Catalog``): an immutable set of offers with the queries federation needs
  (cheapest offer for a request, per-GPU price in a region). Reading and writing the catalog file
  lives in ``hyperion.providers.catalog``; this module does no I/O.

GPU name normalisation (``normalise_gpu``), applied in this order:

1. trim, collapse spaces, drop a vendor prefix (``NVIDIA``, ``AMD``, ``ARM``, ``Tesla``) and a
   trailing architecture word (``Blackwell``, ``Grace Blackwell``, ``Ada``);
2. upper-case, spaces become ``-``;
3. aliases (``GPU_ALIASES``): spellings of the same part become one name;
4. memory variants: when the source gives the memory of one GPU, an ``A100`` with 80 GiB or more
   becomes ``A100-80GB`` and a ``V100`` with 32 GiB or more becomes ``V100-32GB`` (the names the
   GCP and Azure catalogs already use for those parts);
5. any other name is kept as cleaned, so a new GPU in a newer catalog passes through.

Accelerators that are not GPUs (TPU slices, AWS Inferentia and Trainium, Qualcomm AI 100) are
recognised by ``is_gpu`` and left out of the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

PROVIDERS = ("aws", "azure", "gcp")

# Same part, other spelling -> normalised name (keys are already upper-cased, spaces as "-").
GPU_ALIASES: Mapping[str, str] = {
    "A100-40GB": "A100",
    "A100-SXM4-40GB": "A100",
    "A100-80G": "A100-80GB",
    "A100-SXM4-80GB": "A100-80GB",
    "H100-80GB": "H100",
    "H100-MEGA": "H100",          # GCP a3-megagpu: the same H100 80GB, more network bandwidth
    "H100-SXM": "H100",
    "V100-16GB": "V100",
    "V100-SXM2-16GB": "V100",
    "V100-SXM2-32GB": "V100-32GB",
    "GRID-K520": "K520",
    "RADEON-PRO-V520": "V520",
    "INSTINCT-MI25": "MI25",
    "INSTINCT-MI300X": "MI300X",
    "MALI-G78MP12": "MALI-G78",
}

# GPU type -> (memory of one GPU in GiB at or above which it is the big variant, that variant's name)
MEMORY_VARIANTS: Mapping[str, tuple[float, str]] = {
    "A100": (80.0, "A100-80GB"),
    "V100": (32.0, "V100-32GB"),
}

_NOT_GPU = re.compile(r"^(tpu|inferentia|trainium|qualcomm|ai-?100|aws inferentia|aws trainium)", re.IGNORECASE)
_VENDOR = re.compile(r"^(nvidia|amd|arm|tesla)\s+", re.IGNORECASE)
_ARCH_SUFFIX = re.compile(r"\s+(grace\s+blackwell|blackwell|ada)$", re.IGNORECASE)


def is_gpu(name: str) -> bool:
    """False for accelerators that are not GPUs (TPU slices, Inferentia, Trainium, Qualcomm AI 100)."""
    return bool(name.strip()) and not _NOT_GPU.match(name.strip())


def normalise_gpu(name: str, memory_gib: float | None = None) -> str:
    """The normalised GPU type for a source's accelerator name (see the module docstring)."""
    cleaned = " ".join(name.split())
    while True:
        stripped = _VENDOR.sub("", cleaned)
        if stripped == cleaned:
            break
        cleaned = stripped
    cleaned = _ARCH_SUFFIX.sub("", cleaned)
    key = cleaned.upper().replace(" ", "-")
    key = GPU_ALIASES.get(key, key)
    variant = MEMORY_VARIANTS.get(key)
    if variant is not None and memory_gib is not None and memory_gib >= variant[0]:
        key = variant[1]
    return key


@dataclass(frozen=True, slots=True)
class Offer:
    provider: str                 # aws | azure | gcp
    region: str
    zone: str                     # "" when the provider prices per region
    instance_type: str
    gpu_type: str                 # normalised (normalise_gpu)
    gpus: int
    vcpus: float
    memory_gib: float
    usd_per_hour: float           # on-demand, whole machine
    spot_usd_per_hour: float | None = None

    def price(self, spot: bool = False) -> float | None:
        """The hourly price of the whole machine; ``None`` for spot when the source gives none."""
        return self.spot_usd_per_hour if spot else self.usd_per_hour

    def gpu_hour_price(self, spot: bool = False) -> float | None:
        price = self.price(spot)
        return None if price is None else price / self.gpus

    def sort_key(self) -> tuple:
        return (self.provider, self.region, self.zone, self.gpu_type, self.gpus, self.instance_type,
                self.usd_per_hour, self.spot_usd_per_hour is None, self.spot_usd_per_hour or 0.0)


class Catalog:
    """An immutable, ordered set of offers with the price queries federation asks."""

    __slots__ = ("_offers",)

    def __init__(self, offers: Iterable[Offer]):
        self._offers: tuple[Offer, ...] = tuple(sorted(offers, key=Offer.sort_key))

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self) -> Iterator[Offer]:
        return iter(self._offers)

    def offers(self, provider: str | None = None, region: str | None = None, gpu_type: str | None = None) -> list[Offer]:
        """Offers matching every filter given; ``gpu_type`` is normalised first (``"a100"`` finds ``A100``)."""
        wanted = normalise_gpu(gpu_type) if gpu_type is not None else None
        return [o for o in self._offers
                if (provider is None or o.provider == provider)
                and (region is None or o.region == region)
                and (wanted is None or o.gpu_type == wanted)]

    def cheapest(self, gpu_type: str, gpus: int, spot: bool = False, regions: Iterable[str] | None = None) -> Offer | None:
        """The cheapest single machine with at least ``gpus`` GPUs of ``gpu_type``.

        Ranked by the machine's hourly price (spot price when ``spot``; offers without one are left
        out), then by fewer GPUs, then by catalog order, so the answer is deterministic. ``regions``
        limits the search to those region names (of any provider). ``None`` when nothing fits.
        """
        if gpus < 1:
            raise ValueError(f"gpus must be at least 1, got {gpus}")
        allowed = None if regions is None else frozenset(regions)
        best: tuple[float, int, int] | None = None
        found: Offer | None = None
        for index, offer in enumerate(self.offers(gpu_type=gpu_type)):
            price = offer.price(spot)
            if price is None or offer.gpus < gpus or (allowed is not None and offer.region not in allowed):
                continue
            rank = (price, offer.gpus, index)
            if best is None or rank < best:
                best, found = rank, offer
        return found

    def gpu_hour_price(self, provider: str, region: str, gpu_type: str, spot: bool = False) -> float | None:
        """The lowest price of one GPU-hour of ``gpu_type`` in a provider's region (machine price / GPUs).

        ``None`` when the region has no such offer (or, with ``spot``, none with a spot price).
        """
        prices = [p for o in self.offers(provider, region, gpu_type) if (p := o.gpu_hour_price(spot)) is not None]
        return min(prices) if prices else None

    def gpu_types(self) -> list[str]:
        return sorted({o.gpu_type for o in self._offers})
