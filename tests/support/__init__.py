"""Helpers shared by the test folders, imported as `tests.support.<module>`:

- `fixtures`: the suite-wide pytest plugin (corpora, the bundled policy set);
- `kubefake`: the loopback fake Kubernetes API (real HTTP);
- `secrets_testkit`: secret-shaped test values and AdmissionReview builders.

pytest puts the repository root on `sys.path` (`pythonpath` in pyproject.toml), so
`tests.support` and `bench` import by name under `--import-mode=importlib`.
"""
