"""Per-layer probes, gathered where the tensors live and reduced to small summaries
before they leave the device.

Exact over the whole batch: ‖δ(l)‖ (RMS of per-example norms), dead units (no
error signal through the unit for any example), gradient and weight norms. Over
the first `subsample_size` examples (the data are drawn at random, so an unbiased
subsample): moments, saturation, histograms and δ samples.

- collect: the `Collector` an engine feeds during its pass, host or device by its
  `probe_mode`;  data: what the collectors leave, and the step's combination;
- host / device: the two reductions to a record's statistics, same results;
- layout: the typed `Summary` a reduction returns, and the packing by name;
- stats: what both reductions share (histograms, the saturation rule).

A record's size depends on depth and bins, never on width or batch.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from . import collect
from .collect import (
    HEAD_ROWS,
    Collector,
    DeviceCollector,
    HostCollector,
    ProbeMode,
    host_alive,
    make_collector,
)
from .data import PartProbe, ProbeData, combine, subsample_size
from .device import summarize_device
from .host import group_stats, host_histograms, summarize_host
from .layout import SCALAR_KEYS, Layout, Summary
from .stats import SATURATION, histograms, sampled_units, saturation_rule

__all__ = ["HEAD_ROWS", "SATURATION", "SCALAR_KEYS", "Collector", "DeviceCollector",
           "HostCollector", "Layout", "PartProbe", "ProbeData", "ProbeMode", "Summary",
           "collect", "combine", "group_stats", "histograms", "host_alive", "host_histograms",
           "make_collector", "sampled_units", "saturation_rule", "subsample_size", "summarize"]


def summarize(xp: Any, data: ProbeData, norms: dict, activation: str, norm: str, bins: int,
              delta_samples: int, seed: int, host: bool | None = None) -> Summary:
    """Per-layer statistics as host arrays.

    Data in host memory (NumPy, torch on the CPU) are reduced with NumPy; data on a
    device are reduced there, then read back in one transfer. `host=False` forces
    the device code (tests run it on the CPU)."""
    if host is None:
        host = xp.host_memory(data.Z)
    with np.errstate(all="ignore"):
        if not host:
            return summarize_device(xp, data, norms, activation, norm, bins, delta_samples,
                                    seed)
        data = ProbeData(*(xp.as_numpy(getattr(data, f.name)) for f in fields(ProbeData)))
        return summarize_host(data, {key: xp.as_numpy(v) for key, v in norms.items()},
                              activation, norm, bins, delta_samples, seed)

