#!/bin/sh
# The final stage of the image, as one script: the Dockerfile RUNs it on the Python base
# image, and the daemonless build (image/rootfs.py) runs it, unchanged, chrooted into a
# Debian root filesystem. Both therefore end with the same layout:
#
#   /opt/plugin-guard/                 a venv holding argo-plugin-guard and its dependencies
#                                      (bytecode compiled now: the root is read-only later)
#   /usr/local/bin/plugin-guard        -> /opt/plugin-guard/bin/plugin-guard
#   user and group plugin-guard        uid/gid 10001, no home, no shell (the chart's runAsUser)
#
# Usage: install.sh WHEELS_DIR   (the project's wheel and every dependency's wheel; nothing
# is fetched, nothing is compiled, no pip cache is written, pip is removed from the venv).
set -eu

wheels="${1:?usage: install.sh WHEELS_DIR}"
prefix=/opt/plugin-guard
uid=10001

python3 -m venv "$prefix"
"$prefix/bin/python" -m pip install --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$wheels" argo-plugin-guard
# Nothing installs packages at run time: no pip (or setuptools, on Pythons that seed it).
for dist in setuptools pip; do
    if "$prefix/bin/python" -m pip show --quiet "$dist" >/dev/null 2>&1; then
        "$prefix/bin/python" -m pip uninstall --quiet --yes --no-cache-dir \
            --disable-pip-version-check "$dist"
    fi
done
ln -sf "$prefix/bin/plugin-guard" /usr/local/bin/plugin-guard

groupadd --system --gid "$uid" plugin-guard
useradd --system --uid "$uid" --gid "$uid" --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin plugin-guard

rm -rf /root/.cache /tmp/* /var/tmp/*
# Prove the entry point runs (fails the build otherwise).
plugin-guard --version
