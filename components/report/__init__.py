"""Report stage: one HTML page (and the same numbers as JSON) summarising a pipeline run."""

from .build import ReportConfig, ReportResult, build_report

__all__ = ["ReportConfig", "ReportResult", "build_report"]
