"""Request latency and error-rate measurement, so that "did this change hurt?" has an answer."""

from backend.metrics.recorder import MetricsRecorder, RequestMetricsMiddleware

__all__ = ["MetricsRecorder", "RequestMetricsMiddleware"]
