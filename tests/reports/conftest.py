"""The reports' end-to-end tests use the streams' isolated deployment."""

from tests.streams.conftest import deployment

__all__ = ["deployment"]
