# syntax=docker/dockerfile:1
# The image the chart runs: `make image` (docker, podman or buildah), docs/image.md.
#
# Two stages: `build` makes the project's wheel and collects a wheel of every dependency;
# the final stage installs them with image/install.sh into the same slim Python base, so it
# holds no compiler, no build tool, no pip cache and no source tree. The daemonless build
# that the tests use (image/rootfs.py) runs the same install.sh and reads this file's final
# stage (ENV, USER, WORKDIR, ENTRYPOINT, CMD) to start the server the way a runtime would.

ARG PYTHON_IMAGE=docker.io/library/python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is made of (see .dockerignore): a change elsewhere keeps the cache.
COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY webhook/ webhook/
# Every dependency ships wheels for linux/amd64 and linux/arm64, so nothing compiles here.
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="argo-plugin-guard" \
      org.opencontainers.image.description="Admission webhook and policy validator for Argo Workflows executor plugins" \
      org.opencontainers.image.source="https://github.com/argo-plugin-guard/argo-plugin-guard" \
      org.opencontainers.image.url="https://github.com/argo-plugin-guard/argo-plugin-guard" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The wheels and the script are bind-mounted for this one step: neither stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=image/install.sh,target=/install.sh \
    sh /install.sh /wheels
# The chart runs with a read-only root: nothing writes bytecode, and the state folder
# (serve's local CA when no certificate is given) is /tmp, an emptyDir in the chart.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_STATE_HOME=/tmp
USER 10001:10001
WORKDIR /
EXPOSE 8443
ENTRYPOINT ["plugin-guard"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]
