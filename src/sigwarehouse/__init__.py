"""sigwarehouse: causal transferability analysis of audio classifiers, in DuckDB."""

__version__ = "0.1.0"
