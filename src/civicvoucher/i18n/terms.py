"""Names of codes (categories, channels, statuses, levels) in each language.

A code is stable data (``daily_goods``). Its Chinese name lives beside the code's definition,
in the domain's own label table, which the domain registers here
(``terms.register("category", CATEGORY_LABEL_ZH)``); its English name is the code with
spaces. Input goes the other way in each domain's parser (``merchants.rules.parse_category``
accepts 日用百货 as well as ``daily_goods``)."""

from __future__ import annotations

from collections.abc import Mapping

from civicvoucher.i18n import EN

_TABLES: dict[str, Mapping[str, str]] = {}


def register(context: str, zh_names: Mapping[str, str]) -> None:
    _TABLES[context] = zh_names


def name(context: str, code: str, lang: str) -> str:
    code = str(code)
    if lang == EN:
        return code.replace("_", " ")
    table = _TABLES.get(context, {})
    for k, v in table.items():
        if str(k) == code:
            return v
    return code


def known() -> dict[str, Mapping[str, str]]:
    return dict(_TABLES)
