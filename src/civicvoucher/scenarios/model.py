"""Loading a scenario file and applying what-if overrides to it.

A scenario is data (``data/<name>.toml``): geography, members, funding model, forms,
merchants, spending, the program and the figures the source published. Another province or
year is another file. Overrides are ``key=value`` pairs: a named knob (below) or any dotted
path already in the file (``funding.city.enterprise=0.5``).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from civicvoucher.errors import ValidationError
from civicvoucher.i18n import msg

DATA_DIR = Path(__file__).parent / "data"


def scenario_path(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    candidate = DATA_DIR / f"{name}.toml"
    if not candidate.exists():
        known = sorted(f.stem for f in DATA_DIR.glob("*.toml"))
        raise ValidationError(msg("no scenario {name} (known: {known})", name=name, known=known),
                              field="scenario")
    return candidate


def load_scenario(name: str = "shanxi-2020") -> dict[str, Any]:
    with scenario_path(name).open("rb") as fh:
        return tomllib.load(fh)


def _set_county_guarantee(data: dict, value: float) -> None:
    for county in data["counties"]:
        county["guarantee"] = value


def _set_digital_share(data: dict, value: float) -> None:
    for level in data["forms"]["digital_share"]:
        data["forms"]["digital_share"][level] = value


def _set_enterprise_funded(data: dict, value: float) -> None:
    for level in ("province", "city", "county"):
        data["funding"][level]["enterprise"] = value


KNOBS: dict[str, tuple[Callable[[dict, float], None], str]] = {
    "county_guarantee": (_set_county_guarantee,
                         "every county's budget guarantee of union funds (0..1)"),
    "digital_share": (_set_digital_share, "share of issued value in digital form, every level"),
    "enterprise_funded": (_set_enterprise_funded,
                          "share of enterprise members whose union can fund the program"),
}


def _coerce(old: Any, text: str, key: str) -> Any:
    try:
        if isinstance(old, bool):
            return text.lower() in ("1", "true", "yes")
        if isinstance(old, int):
            return int(text)
        if isinstance(old, float):
            return float(text)
        if isinstance(old, datetime):  # without an offset: the scenario's zone (see simulate)
            return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(msg("{key}: {text} is not a {kind}", key=key, text=repr(text),
                                  kind=type(old).__name__), field=key) from None
    if isinstance(old, str):
        return text
    raise ValidationError(msg("{key} is a table; set one of its keys", key=key), field=key)


def apply_overrides(data: dict, overrides: dict[str, str]) -> dict:
    """A copy of ``data`` with each override applied; unknown keys are errors, not ignored."""
    out = copy.deepcopy(data)
    for key, text in overrides.items():
        if key in KNOBS:
            try:
                value = float(text)
            except ValueError:
                raise ValidationError(msg("{key} needs a number, got {text}", key=key,
                                          text=repr(text)), field=key) from None
            if not 0 <= value <= 1:
                raise ValidationError(msg("{key} must be between 0 and 1", key=key), field=key)
            KNOBS[key][0](out, value)
            continue
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ValidationError(msg("no setting {key} (knobs: {knobs})", key=key,
                                          knobs=list(KNOBS)), field=key)
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ValidationError(msg("no setting {key} (knobs: {knobs})", key=key,
                                          knobs=list(KNOBS)), field=key)
        node[parts[-1]] = _coerce(node[parts[-1]], text, key)
    return out


def overrides_from_file(path: Path) -> dict[str, str]:
    """A TOML file of overrides: flat ``key = value`` pairs or nested tables."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = str(node).lower() if isinstance(node, bool) else str(node)

    walk("", data)
    return flat


def guarantee_by_county(data: dict) -> dict[str, float]:
    return {c["code"]: float(c["guarantee"]) for c in data["counties"]}
