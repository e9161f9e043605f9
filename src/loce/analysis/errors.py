"""Errors raised by the analyses (all subclasses of :class:`loce.errors.LoceError`)."""

from __future__ import annotations

from loce.errors import LoceError


class AnalysisError(LoceError):
    """An analysis cannot run on the given LoCEs (bad shapes, non-finite values, unknown option...)."""


class TooFewSamplesError(AnalysisError):
    """A concept (or the whole set) has too few LoCEs for the requested analysis."""


class SingleConceptError(AnalysisError):
    """The analysis compares concepts, but the LoCEs carry only one concept."""


class TooManySamplesError(AnalysisError):
    """The analysis needs memory quadratic in the number of LoCEs and the set is larger than allowed."""
