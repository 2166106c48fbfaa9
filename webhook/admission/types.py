"""The AdmissionReview wire format, typed with the real camelCase keys.

Field names and meanings follow `k8s.io/api/admission/v1` (`types.go`); `v1beta1` has
the same shape. Every request field is optional at the type level because the review
core validates what arrives instead of trusting it: the API server always sends `uid`
and `operation`, but test fixtures and hostile clients do not.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Required, TypedDict

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
OPERATIONS: frozenset[str] = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

API_VERSION_V1 = "admission.k8s.io/v1"
API_VERSION_V1BETA1 = "admission.k8s.io/v1beta1"
API_VERSIONS: frozenset[str] = frozenset({API_VERSION_V1, API_VERSION_V1BETA1})
KIND = "AdmissionReview"


class GroupVersionKind(TypedDict, total=False):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict, total=False):
    group: str
    version: str
    resource: str


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class AdmissionRequest(TypedDict, total=False):
    uid: Required[str]
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: str
    requestKind: GroupVersionKind
    requestResource: GroupVersionResource
    requestSubResource: str
    name: str
    namespace: str
    operation: Required[Operation]
    userInfo: UserInfo
    object: dict[str, Any] | None
    oldObject: dict[str, Any] | None
    dryRun: bool
    options: dict[str, Any] | None


class Status(TypedDict, total=False):
    """The part of `metav1.Status` the API server reads from a denial."""

    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    patch: NotRequired[str]
    patchType: NotRequired[Literal["JSONPatch"]]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class AdmissionReviewRequest(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse
