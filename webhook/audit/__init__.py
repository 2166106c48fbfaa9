"""`plugin-guard audit`: the policies over what the cluster already stores.

`report` is pure (objects + verdicts -> wgpolicyk8s.io/v1alpha2 PolicyReports),
`cluster` reads the objects and writes the reports through `webhook.kube`, `service`
is one audit pass, `commands` the CLI and the `--interval` loop, `metrics` Prometheus.
"""
