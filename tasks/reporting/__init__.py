"""Reporting: the HTML pages a person reads (data, evaluation and monitoring reports, the
run index)."""
