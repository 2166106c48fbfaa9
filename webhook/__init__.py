"""argo-plugin-guard: admission webhook and policy validator for Argo executor plugins."""

__version__ = "0.1.0"
