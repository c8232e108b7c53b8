"""Where a program's rows came from: a simulated sample of a scenario, or a real program.

The demo (``cli/demo.py``) records in the database itself (``deployment_setting``, the table
for facts that belong to a database, not to a folder) that a program's rows are a sample:

    sample:shanxi-2020 = {"scenario": "shanxi-2020", "scale": 0.01, "seed": 2020,
                          "overrides": {"county_guarantee": "1.0"}}

Every report of that program reads it, whoever asks (the demo, ``civicvoucher report``, the
API), so they all print the same tables: figures are sample values (full size = value /
scale), compared with the scenario's published figures, counties grouped by the scenario's
guarantee shares. A program without the record is real: scale 1, nothing to compare with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SETTING_PREFIX = "sample:"
MAX_VALUE = 500  # deployment_setting.value is VARCHAR(500)


def setting_name(program_key: str) -> str:
    return f"{SETTING_PREFIX}{program_key}"


@dataclass(frozen=True)
class Sample:
    """A simulated program: which scenario, at what sampling scale, with which what-if."""

    scenario: str
    scale: float
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data: dict[str, Any] = {"scenario": self.scenario, "scale": self.scale,
                                "seed": self.seed, "overrides": self.overrides}
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        if len(text) > MAX_VALUE:  # a long overrides file: the report needs only the rest
            data["overrides"] = {"(omitted)": str(len(self.overrides))}
            text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        return text

    @classmethod
    def from_json(cls, text: str) -> Sample | None:
        """The record, or None when it is not one this version can read."""
        try:
            data = json.loads(text)
            scale = float(data["scale"])
            scenario = str(data["scenario"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 < scale <= 1:
            return None
        seed = data.get("seed")
        overrides = data.get("overrides") or {}
        return cls(scenario, scale, int(seed) if isinstance(seed, int) else None,
                   {str(k): str(v) for k, v in overrides.items()}
                   if isinstance(overrides, dict) else {})


def scenario_figures(sample: Sample) -> tuple[dict, dict[str, float]] | None:
    """(published figures, guarantee share by county code) of the sample's scenario, or None
    when the scenario file cannot be found any more (the report then has no comparison).

    The base scenario's guarantees, not the what-if's: a what-if report shows how the same
    counties fare, not a regrouping (as the demo always did)."""
    from civicvoucher.errors import ValidationError
    from civicvoucher.scenarios.model import guarantee_by_county, load_scenario

    try:
        scn = load_scenario(sample.scenario)
    except (ValidationError, OSError):
        return None
    return scn.get("published") or {}, guarantee_by_county(scn)


def record(session, program_key: str, sample: Sample) -> None:
    """Write (or replace) the sample record of ``program_key`` in the caller's transaction."""
    from civicvoucher.core import clock
    from civicvoucher.keys import DeploymentSetting

    session.merge(DeploymentSetting(name=setting_name(program_key), value=sample.to_json(),
                                    created_at=clock.now()))
