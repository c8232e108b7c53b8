"""Read side: the policy report, computed with DuckDB from the transaction tables.

``compute_report`` builds a ``Report`` (named tables + headline figures) of a program or of
one organisation's subtree; ``compare_reports`` diffs a what-if run against a baseline;
``render.write_outputs`` writes the offline HTML page, CSV and XLSX (``xlsx``) files;
``render.print_summary`` prints the terminal summary; ``describe`` has the words around the
numbers (title, scope, the sample warning); ``provenance`` is the database's record that a
program is a simulated sample. The demo, ``civicvoucher report`` and the API all go through
these, so they give the same tables.
"""

from civicvoucher.analytics.report import compare_reports, compute_report
from civicvoucher.analytics.tables import Column, Headline, Report, Table

__all__ = ["Column", "Headline", "Report", "Table", "compare_reports", "compute_report"]
