#!/usr/bin/env bash
# Install everything a fresh Debian 12 machine needs to run AutoPod's demo and tests.
# Safe to run again: each step checks first and does only what is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
DEBIAN_PACKAGES=(debootstrap busybox-static criu gcc libc6-dev openssh-server openssh-client rsync
                 iproute2 python3-venv tar procps shellcheck python3-apt dpkg-dev qemu-system-x86 chromium)

say() { printf '[setup] %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "setup.sh must run as root (pods need namespaces, CRIU needs root)" >&2; exit 1; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "building the Python virtual environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
fi

# Ansible finds the collection through .collections (see ansible.cfg): link this checkout there.
mkdir -p "$ROOT/.collections/ansible_collections/autopod"
ln -sfn ../../.. "$ROOT/.collections/ansible_collections/autopod/autopod"
# Its dependency ansible.posix comes with the `ansible` package in the virtual environment: link it there too, so that
# a run that looks for collections only in .collections finds it (the Mitogen recipe in README.md sets
# ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False: Mitogen reads every installed collection's metadata for each module task).
posix="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections/ansible/posix"
[ -d "$posix" ] || { echo "setup.sh: ansible.posix is not in $VENV (requirements.txt installs it with ansible)" >&2; exit 1; }
mkdir -p "$ROOT/.collections/ansible_collections/ansible"
ln -sfn "$posix" "$ROOT/.collections/ansible_collections/ansible/posix"

# CRIU: Debian 12's 3.17 fails on kernels from 6.13, so take 4.2 from Debian unstable into a private
# root (docs/design.md, "CRIU versions"). The criu role does it, the same way it does on managed hosts. Debian's own
# criu 3.17 (above, in /usr/sbin) stays as the too-old CRIU the tests expect to be refused.
# The role also raises fs.pipe-max-size, which post-copy migration needs (and which a reboot resets
# where no systemd applies /etc/sysctl.d).
# It runs again when the role itself changed since it last ran here.
role_stamp=/opt/autopod/criu-role.sha256
role_sum=$(cd "$ROOT" && find roles/criu playbooks/install_criu.yml -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
if ! /usr/local/sbin/criu check >/dev/null 2>&1 || [ "$(cat /proc/sys/fs/pipe-max-size)" -lt 4194304 ] \
   || [ "$(cat "$role_stamp" 2>/dev/null)" != "$role_sum" ]; then
  say "installing and checking CRIU with the autopod.autopod.criu role"
  (cd "$ROOT" && "$VENV/bin/ansible-playbook" -i localhost, -c local \
     -e ansible_python_interpreter="$VENV/bin/python" -e criu_install=private_root \
     playbooks/install_criu.yml)
  echo "$role_sum" > "$role_stamp"
fi
say "ready: $("$VENV/bin/ansible" --version | head -1), CRIU $(/usr/local/sbin/criu --version | sed -n 's/Version: //p')"
