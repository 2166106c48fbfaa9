"""The Kubernetes Pod Security Standards, "baseline" and "restricted", as of Kubernetes v1.37.

A pure-Python reading of the published standard (kubernetes.io, "Pod Security Standards")
that agrees with every v1.37 fixture of kubernetes/pod-security-admission (PSA). It runs
inside the admission webhook, so it is plain dict walking: no schema, no regex, no copies.

`pod_security_findings(pod, level)` takes `{"metadata": ..., "spec": ...}` (a Pod, or the pod
template of a workload) and returns `(path, message)` pairs. Paths are relative to `pod`
(`spec.containers[0].securityContext.allowPrivilegeEscalation`) and point at the field to
write, even when its parents are missing. Each message says what to write instead and ends
with the profile the control belongs to: "(baseline)" or "(restricted)".

Baseline controls: HostProcess, host namespaces, privileged containers, capabilities (add
only the default set), hostPath volumes, host ports, host in probes and lifecycle hooks,
AppArmor (annotations and `appArmorProfile`), SELinux, /proc mount type, seccomp (not
Unconfined), sysctls (the safe set). Restricted adds: volume types, privilege escalation,
runAsNonRoot, runAsUser != 0, seccomp RuntimeDefault/Localhost required, capabilities
(drop ALL, add only NET_BIND_SERVICE), /proc mount type Default even in a user namespace.
Container-level controls apply to containers, initContainers and ephemeralContainers.

Version-specific rules followed (v1.37):
- Pods with `spec.os.name: windows` are exempt from the restricted privilege-escalation,
  seccomp and capabilities controls (Linux-only since v1.25). They still get the baseline
  forms of those controls, which the API server makes moot anyway: it refuses
  `capabilities` and `seccompProfile` on Windows pods.
- Pods in a user namespace (`spec.hostUsers: false`) are exempt from runAsNonRoot and
  runAsUser (restricted) and may use any procMount under baseline (v1.35); restricted still
  requires procMount Default.
- `image` volumes are allowed under restricted (v1.33); the safe sysctls include
  `net.ipv4.tcp_slow_start_after_idle` and `net.ipv4.tcp_notsent_lowat` (v1.37).
- A volume with no source at all is an `emptyDir` once the API server defaults it, so it
  passes; an unknown volume source fails restricted (it is an allow-list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal

from webhook.paths import join_path

__all__ = [
    "ALLOWED_SYSCTLS",
    "BASELINE_CAPABILITIES",
    "LEVELS",
    "RESTRICTED_VOLUME_SOURCES",
    "Level",
    "pod_security_findings",
]

Level = Literal["baseline", "restricted"]
LEVELS: Final[tuple[Level, ...]] = ("baseline", "restricted")

# Capabilities baseline lets a container add: the container runtime's default set.
# Case-sensitive, without the CAP_ prefix, exactly as PSA compares them.
BASELINE_CAPABILITIES: Final = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_RESTRICTED_ADD: Final = "NET_BIND_SERVICE"

# Safe sysctls (namespaced and isolated per pod), v1.37.
ALLOWED_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",  # 1.27
        "net.ipv4.tcp_keepalive_time",  # 1.29
        "net.ipv4.tcp_fin_timeout",  # 1.29
        "net.ipv4.tcp_keepalive_intvl",  # 1.29
        "net.ipv4.tcp_keepalive_probes",  # 1.29
        "net.ipv4.tcp_rmem",  # 1.32
        "net.ipv4.tcp_wmem",  # 1.32
        "net.ipv4.tcp_slow_start_after_idle",  # 1.37
        "net.ipv4.tcp_notsent_lowat",  # 1.37
    }
)

# Volume sources restricted allows; every other source (hostPath, nfs, ...) is refused.
RESTRICTED_VOLUME_SOURCES: Final = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",  # 1.33
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

_SELINUX_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_GOOD_PROFILE_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"
_CONTAINER_LISTS: Final = ("containers", "initContainers", "ephemeralContainers")
_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS: Final = ("postStart", "preStop")
_HOST_HANDLERS: Final = ("httpGet", "tcpSocket")
_HOST_NAMESPACES: Final = ("hostNetwork", "hostPID", "hostIPC")

_B: Final = " (baseline)"
_R: Final = " (restricted)"

_BASELINE_CAPS_TEXT: Final = ", ".join(sorted(BASELINE_CAPABILITIES))
_SYSCTLS_TEXT: Final = ", ".join(sorted(ALLOWED_SYSCTLS))
_VOLUMES_TEXT: Final = ", ".join(sorted(RESTRICTED_VOLUME_SOURCES))
_SELINUX_TEXT: Final = ", ".join(sorted(_SELINUX_TYPES - {""}))

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

Findings = list[tuple[str, str]]


def _map(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one (malformed input is not a crash)."""
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def _seq(value: Any) -> Sequence[Any]:
    if type(value) is list or type(value) is tuple:
        return value
    return ()


def _set(value: Any) -> bool:
    """True when a boolean-ish field is set to anything but false/null."""
    return value is not None and value is not False


def _among(value: Any, allowed: frozenset[str]) -> bool:
    """`value in allowed`, for any value (a list where a string belongs is not a crash)."""
    return isinstance(value, str) and value in allowed


def _is_all(name: Any) -> bool:
    return isinstance(name, str) and name.upper().removeprefix("CAP_") == "ALL"


def _q(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def pod_security_findings(pod: Mapping[str, Any], level: Level) -> list[tuple[str, str]]:
    """Every way `pod` ({"metadata", "spec"}) breaks the Pod Security Standard `level`.

    Returns `(path, message)` pairs, paths relative to `pod`; an empty list means compliant.
    Restricted includes baseline. Raises ValueError for an unknown level.
    """
    if level == "restricted":
        restricted = True
    elif level == "baseline":
        restricted = False
    else:
        raise ValueError(
            f"unknown Pod Security Standards level {level!r}: use 'baseline' or 'restricted'"
        )

    out: Findings = []
    metadata = _map(pod.get("metadata"))
    spec = _map(pod.get("spec"))

    windows = _map(spec.get("os")).get("name") == "windows"
    # Linux-only restricted controls (privilege escalation, seccomp, capabilities).
    strict = restricted and not windows
    # runAsNonRoot / runAsUser do not apply to pods in a user namespace (v1.35).
    user_ns = spec.get("hostUsers") is False
    root_checks = restricted and not user_ns

    annotations = metadata.get("annotations")
    if annotations:
        _check_apparmor_annotations(_map(annotations), out)

    for field in _HOST_NAMESPACES:
        if _set(spec.get(field)):
            out.append((f"spec.{field}", f"{field} must be false or unset{_B}"))

    psc = _map(spec.get("securityContext"))
    if psc:
        _check_security_context(psc, "spec.securityContext", strict, root_checks, out)
        sysctls = psc.get("sysctls")
        if sysctls:
            _check_sysctls(_seq(sysctls), out)
    # Pod-level values the restricted container checks fall back on.
    pod_non_root = psc.get("runAsNonRoot")
    seccomp = psc.get("seccompProfile")
    pod_seccomp_ok = seccomp is not None and _among(_map(seccomp).get("type"), _GOOD_PROFILE_TYPES)

    volumes = spec.get("volumes")
    if volumes:
        _check_volumes(_seq(volumes), restricted, out)

    # Containers relying on the pod level for runAsNonRoot / seccomp while it is unset.
    no_non_root: list[str] = []
    no_seccomp: list[str] = []
    containers = 0
    for list_name in _CONTAINER_LISTS:
        items = spec.get(list_name)
        if not items:
            continue
        for index, item in enumerate(_seq(items)):
            container = _map(item)
            containers += 1
            prefix = f"spec.{list_name}[{index}]"
            sc = _map(container.get("securityContext"))
            _check_container(container, sc, prefix, restricted, strict, user_ns, out)
            if sc:
                _check_security_context(sc, prefix + ".securityContext", strict, root_checks, out)
            if root_checks and sc.get("runAsNonRoot") is None and pod_non_root is not True:
                no_non_root.append(prefix)
            if strict and sc.get("seccompProfile") is None and not pod_seccomp_ok:
                no_seccomp.append(prefix)

    # Explicitly bad pod-level values were reported above (fixing them fixes the containers).
    if no_non_root and pod_non_root is None:
        _report_unset(
            no_non_root,
            containers,
            "runAsNonRoot",
            "runAsNonRoot must be true",
            "true",
            out,
        )
    if no_seccomp and seccomp is None:
        _report_unset(
            no_seccomp,
            containers,
            "seccompProfile.type",
            "seccompProfile.type must be RuntimeDefault or Localhost",
            "RuntimeDefault",
            out,
        )
    return out


def _report_unset(
    prefixes: list[str], containers: int, field: str, what: str, value: str, out: Findings
) -> None:
    """A restricted field set neither at pod level nor on some containers."""
    if len(prefixes) == containers:
        # No container sets it: one pod-level fix covers them all.
        out.append(
            (
                f"spec.securityContext.{field}",
                f"{what}: set spec.securityContext.{field}: {value} "
                f"(or set it on every container){_R}",
            )
        )
        return
    for prefix in prefixes:
        out.append(
            (
                f"{prefix}.securityContext.{field}",
                f"{what}: set it on this container, or once in spec.securityContext{_R}",
            )
        )


def _check_apparmor_annotations(annotations: Mapping[str, Any], out: Findings) -> None:
    for key, value in annotations.items():
        if not isinstance(key, str) or not key.startswith(_APPARMOR_ANNOTATION_PREFIX):
            continue
        if value == "" or value == "runtime/default":
            continue
        if isinstance(value, str) and value.startswith("localhost/"):
            continue
        out.append(
            (
                join_path("metadata.annotations", key),
                f"AppArmor profile {_q(value)} is not allowed: use runtime/default or "
                f"localhost/<profile>, or better securityContext.appArmorProfile.type: "
                f"RuntimeDefault{_B}",
            )
        )


def _check_sysctls(sysctls: Sequence[Any], out: Findings) -> None:
    for index, sysctl in enumerate(sysctls):
        name = _map(sysctl).get("name")
        if not _among(name, ALLOWED_SYSCTLS):
            out.append(
                (
                    f"spec.securityContext.sysctls[{index}].name",
                    f"sysctl {_q(name)} is not allowed: only the safe sysctls may be set "
                    f"({_SYSCTLS_TEXT}){_B}",
                )
            )


def _check_volumes(volumes: Sequence[Any], restricted: bool, out: Findings) -> None:
    for index, item in enumerate(volumes):
        volume = _map(item)
        if not restricted:
            if volume.get("hostPath") is not None:
                out.append(
                    (
                        f"spec.volumes[{index}].hostPath",
                        "hostPath volumes are not allowed: use a persistentVolumeClaim, "
                        f"emptyDir, configMap or secret volume instead{_B}",
                    )
                )
            continue
        for key, value in volume.items():
            if key == "name" or value is None or key in RESTRICTED_VOLUME_SOURCES:
                continue
            out.append(
                (
                    join_path("spec.volumes", index, str(key)),
                    f"{key} volumes are not allowed: use one of {_VOLUMES_TEXT}{_R}",
                )
            )


def _check_security_context(
    sc: Mapping[str, Any], path: str, strict: bool, root_checks: bool, out: Findings
) -> None:
    """Controls that read a pod-level or a container-level securityContext alike."""
    windows_options = sc.get("windowsOptions")
    if windows_options and _set(_map(windows_options).get("hostProcess")):
        out.append(
            (
                path + ".windowsOptions.hostProcess",
                f"windowsOptions.hostProcess must be false or unset{_B}",
            )
        )

    selinux = sc.get("seLinuxOptions")
    if selinux:
        options = _map(selinux)
        selinux_type = options.get("type")
        if selinux_type is not None and not _among(selinux_type, _SELINUX_TYPES):
            out.append(
                (
                    path + ".seLinuxOptions.type",
                    f"seLinuxOptions.type {_q(selinux_type)} is not allowed: leave it unset or "
                    f"use one of {_SELINUX_TEXT}{_B}",
                )
            )
        for field in ("user", "role"):
            value = options.get(field)
            if value is not None and value != "":
                out.append(
                    (path + ".seLinuxOptions." + field, f"seLinuxOptions.{field} must be unset{_B}")
                )

    apparmor = sc.get("appArmorProfile")
    if apparmor is not None:
        apparmor_type = _map(apparmor).get("type")
        if not _among(apparmor_type, _GOOD_PROFILE_TYPES):
            out.append(
                (
                    path + ".appArmorProfile.type",
                    f"appArmorProfile.type {_q(apparmor_type)} is not allowed: use "
                    f"RuntimeDefault or Localhost{_B}",
                )
            )

    seccomp = sc.get("seccompProfile")
    if seccomp is not None:
        seccomp_type = _map(seccomp).get("type")
        if not _among(seccomp_type, _GOOD_PROFILE_TYPES):
            out.append(
                (
                    path + ".seccompProfile.type",
                    f"seccompProfile.type {_q(seccomp_type)} is not allowed: use "
                    f"RuntimeDefault or Localhost{_R if strict else _B}",
                )
            )

    if root_checks:
        non_root = sc.get("runAsNonRoot")
        if non_root is not None and non_root is not True:
            out.append((path + ".runAsNonRoot", f"runAsNonRoot must be true{_R}"))
        if sc.get("runAsUser") == 0:
            out.append(
                (
                    path + ".runAsUser",
                    f"runAsUser must not be 0: use a non-zero UID, or leave it unset and "
                    f"let the image's non-root user apply{_R}",
                )
            )


def _check_container(
    container: Mapping[str, Any],
    sc: Mapping[str, Any],
    prefix: str,
    restricted: bool,
    strict: bool,
    user_ns: bool,
    out: Findings,
) -> None:
    """Controls that exist on containers only."""
    sc_path = prefix + ".securityContext"

    if sc:
        if _set(sc.get("privileged")):
            out.append((sc_path + ".privileged", f"privileged must be false or unset{_B}"))

        proc_mount = sc.get("procMount")
        if proc_mount is not None and proc_mount != "Default":
            if restricted:
                out.append((sc_path + ".procMount", f"procMount must be Default or unset{_R}"))
            elif not user_ns:
                out.append(
                    (
                        sc_path + ".procMount",
                        "procMount must be Default or unset (other values need a user "
                        f"namespace: spec.hostUsers: false){_B}",
                    )
                )

    capabilities = _map(sc.get("capabilities"))
    added = capabilities.get("add")
    if added:
        _check_added_capabilities(_seq(added), sc_path + ".capabilities.add", strict, out)
    if strict:
        dropped = _seq(capabilities.get("drop"))
        if "ALL" not in dropped:
            hint = " (in capitals: ALL)" if any(_is_all(name) for name in dropped) else ""
            out.append(
                (
                    sc_path + ".capabilities.drop",
                    f'capabilities.drop must include "ALL"{hint}{_R}',
                )
            )
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(
                (
                    sc_path + ".allowPrivilegeEscalation",
                    f"allowPrivilegeEscalation must be false{_R}",
                )
            )

    ports = container.get("ports")
    if ports:
        for index, port in enumerate(_seq(ports)):
            host_port = _map(port).get("hostPort")
            if host_port is not None and host_port != 0:
                out.append(
                    (
                        f"{prefix}.ports[{index}].hostPort",
                        f"hostPort must be 0 or unset: reach the pod through a Service instead{_B}",
                    )
                )

    for probe in _PROBES:
        handler = container.get(probe)
        if handler:
            _check_handler_host(_map(handler), f"{prefix}.{probe}", out)
    lifecycle = container.get("lifecycle")
    if lifecycle:
        hooks = _map(lifecycle)
        for hook in _HOOKS:
            handler = hooks.get(hook)
            if handler:
                _check_handler_host(_map(handler), f"{prefix}.lifecycle.{hook}", out)


def _check_added_capabilities(added: Sequence[Any], path: str, strict: bool, out: Findings) -> None:
    for index, capability in enumerate(added):
        if strict:
            if capability == _RESTRICTED_ADD:
                continue
            allowed = f"only {_RESTRICTED_ADD} may be added{_R}"
        else:
            if _among(capability, BASELINE_CAPABILITIES):
                continue
            allowed = f"only {_BASELINE_CAPS_TEXT} may be added{_B}"
        hint = ""
        if isinstance(capability, str):
            fixed = capability.upper().removeprefix("CAP_")
            if fixed != capability and (
                fixed == _RESTRICTED_ADD if strict else fixed in BASELINE_CAPABILITIES
            ):
                hint = f" (write {fixed})"
        out.append(
            (f"{path}[{index}]", f"capability {_q(capability)} is not allowed{hint}: {allowed}")
        )


def _check_handler_host(handler: Mapping[str, Any], path: str, out: Findings) -> None:
    for kind in _HOST_HANDLERS:
        action = handler.get(kind)
        if not action:
            continue
        host = _map(action).get("host")
        if host is not None and host != "":
            out.append(
                (
                    f"{path}.{kind}.host",
                    f"host {_q(host)} is not allowed: leave host unset so the check targets "
                    f"the pod's own IP{_B}",
                )
            )
