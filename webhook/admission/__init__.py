"""Pure AdmissionReview handling: `validate` / `mutate(review) -> Outcome`, no transport.

The web layer (`webhook.server`) decodes JSON, calls these, and encodes the answer.
"""

from __future__ import annotations

from webhook.admission.review import (
    BadReview,
    Evaluator,
    Injector,
    Outcome,
    encode_patch,
    format_denial,
    format_warning,
    mutate,
    parse,
    validate,
)
from webhook.admission.types import (
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReviewRequest,
    AdmissionReviewResponse,
    Status,
)

__all__ = [
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReviewRequest",
    "AdmissionReviewResponse",
    "BadReview",
    "Evaluator",
    "Injector",
    "Outcome",
    "Status",
    "encode_patch",
    "format_denial",
    "format_warning",
    "mutate",
    "parse",
    "validate",
]
