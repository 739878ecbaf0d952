"""The version of the naas-trainer distribution (``pyproject.toml`` reads it from here), without the ~20 ms that
``importlib.metadata`` takes to import and look it up in every ``naas-hw`` run."""

__version__ = "0.1.0"
