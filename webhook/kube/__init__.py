"""The Kubernetes boundary: the only package that imports `kubernetes`.

    from webhook.kube import Cluster, KubeApiError, KubeConfigError, kinds

    cluster = Cluster.connect(kubeconfig=None)   # path, $KUBECONFIG, ~/.kube/config, in-cluster
    cluster.namespace                            # the context's / the pod's namespace, or "default"
    secrets = cluster.resource(kinds.SECRET)     # one ResourceClient for any kinds.Kind

    secrets.get(name, namespace=ns) -> dict
    secrets.create(obj, namespace=ns) -> dict    # 409 .already_exists; generateName works
    secrets.update(obj, namespace=ns) -> dict    # PUT; stale metadata.resourceVersion: 409 .conflict
    secrets.update_status(obj, namespace=ns) -> dict
    secrets.patch(name, patch, namespace=ns, patch_type="merge"|"json"|"strategic"|"apply",
                  field_manager=None, force=False) -> dict
    secrets.patch_status(name, patch, namespace=ns, patch_type="merge", ...) -> dict
    secrets.delete(name, namespace=ns, resource_version=None, uid=None,
                   propagation_policy=None) -> dict
    secrets.list(namespace=None, label_selector=None, field_selector=None, limit=500)
        -> ObjectList(items, resource_version)   # every page; `pages(...)` yields them one by one
    secrets.watch(namespace=None, resource_version="", timeout=300, label_selector=None,
                  field_selector=None, bookmarks=True) -> Watch
        # iterate: WatchEvent(type, object) incl. BOOKMARK; .stop() from another thread;
        # 410 -> KubeApiError .gone: list again and watch from the new list's version
    cluster.close()

Objects are plain JSON dicts. `namespace=None` on a namespaced kind's list/watch is every
namespace; a namespaced object needs one (or carries it in `metadata.namespace` for
create/update). A new kind is one `kinds.Kind(group, version, plural, kind, namespaced)`.

Errors: `KubeApiError(code, reason, message, status)`, code 0 for transport failures,
`.status` the API server's Status dict, the cause kept as `__cause__`; properties
`.transient .gone .conflict .already_exists .not_found`. `KubeConfigError`: one line.

`webhook.kube.models`: the generated API model classes (strict Container fields for the
policy path), imported lazily.
"""

from webhook.kube import kinds
from webhook.kube.client import (
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT,
    Cluster,
    ObjectList,
    PatchType,
    ResourceClient,
    Watch,
    WatchEvent,
)
from webhook.kube.config import ClusterConfig, load_config
from webhook.kube.errors import KubeApiError, KubeConfigError
from webhook.kube.kinds import Kind

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WATCH_TIMEOUT",
    "Cluster",
    "ClusterConfig",
    "Kind",
    "KubeApiError",
    "KubeConfigError",
    "ObjectList",
    "PatchType",
    "ResourceClient",
    "Watch",
    "WatchEvent",
    "kinds",
    "load_config",
]
