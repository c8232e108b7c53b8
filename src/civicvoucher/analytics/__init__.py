"""Read side: the policy report, computed with DuckDB from the transaction tables.

``compute_report`` builds a ``Report`` (named tables + headline figures); ``compare_reports``
diffs a what-if run against a baseline; ``render.write_outputs`` writes the offline HTML page,
CSV and XLSX files; ``render.print_summary`` prints the terminal summary.
"""

from civicvoucher.analytics.report import compare_reports, compute_report
from civicvoucher.analytics.tables import Column, Headline, Report, Table

__all__ = ["Column", "Headline", "Report", "Table", "compare_reports", "compute_report"]
