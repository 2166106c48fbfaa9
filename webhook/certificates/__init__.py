"""Self-managed TLS for the webhook: a CA and serving certificate kept in one Secret.

Pure part (no cluster, no clock of its own): `issuing` makes the CA and the serving
certificate, `material` reads and writes the Secret's layout, `renewal` decides what is
due, `files` puts the result where the server's TLS reloader reads it. The controller
(`controller`) is the one part that talks to the cluster, through `webhook.kube`.
"""

from webhook.certificates.files import CertificateStatus, ServingFiles
from webhook.certificates.issuing import Issued, issue_serving, new_ca, service_names
from webhook.certificates.material import Material
from webhook.certificates.renewal import Change, Renewal, RenewalPolicy, parse_duration, renew

__all__ = [
    "CertificateStatus",
    "Change",
    "Issued",
    "Material",
    "Renewal",
    "RenewalPolicy",
    "ServingFiles",
    "issue_serving",
    "new_ca",
    "parse_duration",
    "renew",
    "service_names",
]
