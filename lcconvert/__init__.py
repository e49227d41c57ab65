"""lcconvert: read, fold, verify and write Leela Chess Zero and Leela Zero networks."""

__version__ = "0.1.0"
