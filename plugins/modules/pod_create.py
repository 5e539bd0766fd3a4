#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_create
short_description: Create, start, stop or remove a pod
version_added: 0.1.0
description:
  - Manages a pod, a group of processes with private PID, mount, UTS, IPC and network namespaces, a private root
    filesystem reached with C(pivot_root), its own IP and MAC address on a host bridge, and a memory cgroup.
  - The pod's first process is run by a small per-pod supervisor that waits for it and records its exit status, so the
    pod keeps running after the module returns.
  - Pods made this way can be checkpointed with M(autopod.autopod.pod_checkpoint) and restored, on this host or another,
    with M(autopod.autopod.pod_restore).
  - Standard input of the first process is the pod's C(/dev/null); standard output and error go to
    C(/.autopod/console.log) inside the pod.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the pod, unique on the host. 1 to 32 lower-case letters, digits and C(-), starting and ending with a
        letter or digit.
    type: str
    required: true
  rootfs:
    description:
      - Directory holding the pod's root filesystem. Needed to create a pod.
      - C(/proc), C(/dev), C(/tmp) and C(/.autopod) are created in it when missing.
    type: path
  command:
    description:
      - The pod's first process and its arguments, as a list. Needed to create a pod. It is executed directly, never
        through a shell; C(command[0]) is looked up in the C(PATH) of O(env) when it is not absolute.
    type: list
    elements: str
  env:
    description: Environment of the first process. C(PATH) defaults to the usual system directories.
    type: dict
    default: {}
  workdir:
    description: Working directory of the first process, inside the pod.
    type: str
    default: /
  hostname:
    description: Host name inside the pod. Defaults to O(name).
    type: str
  network:
    description:
      - The pod's network identity. Without it the pod has only a loopback interface.
      - The pod gets an interface C(eth0) with this address and MAC; the host end of its veth pair joins O(network.bridge).
    type: dict
    suboptions:
      address:
        description: IPv4 address in CIDR form, for example C(10.0.0.5/24). It must not be in use on the host.
        type: str
        required: true
      bridge:
        description: Existing host bridge the pod's veth joins.
        type: str
        required: true
      gateway:
        description: Default gateway inside the pod, an address in the same subnet.
        type: str
      mac:
        description: MAC address. Defaults to a locally administered address derived from O(name), so it is stable.
        type: str
      mtu:
        description: MTU of the pod's interface and of the host end of its veth.
        type: int
      ipv6:
        description:
          - Keep IPv6 on the pod's interface (link-local address and autoconfiguration). Off by default, so that the
            interface sends nothing the pod did not ask for; either way nothing of the pod reaches the segment during
            a restore until its sockets exist.
        type: bool
        default: false
  mounts:
    description:
      - Host directories or files bind-mounted into the pod. CRIU treats them as external mounts, so the same source
        must exist on any host the pod is restored on.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Absolute path on the host.
        type: path
        required: true
      target:
        description: Absolute path inside the pod; not C(/), C(/proc), C(/dev), C(/tmp) or C(/.autopod).
        type: str
        required: true
      readonly:
        description: Mount read-only.
        type: bool
        default: false
  allow_host_paths:
    description:
      - Allow O(mounts) whose source is the host's C(/) or lies in its C(/proc), C(/sys), C(/dev) or C(/etc). A pod is
        not a security sandbox (its processes run as root with every capability, see README.md), so such a mount hands
        the host's own files to the pod; they are refused unless this is set.
    type: bool
    default: false
  no_new_privs:
    description:
      - Start the pod's first process with C(no_new_privs) (prctl C(PR_SET_NO_NEW_PRIVS)), inherited by every process
        of the pod, so that setuid and setgid files and file capabilities give nothing after it. CRIU keeps the flag
        through checkpoints and moves.
    type: bool
    default: false
  memory_max:
    description:
      - Memory limit of the pod's cgroup, in bytes or with a unit (V(256M), V(1G)). At least 4 MiB. Unlimited when unset.
    type: str
  user:
    description:
      - The user the first process runs as, a name from the pod's own C(/etc/passwd) or a number. It gets the user's
        primary group and the supplementary groups the pod's C(/etc/group) lists for it, as login(1) gives them, and
        C(HOME) and C(USER). Root when unset. Processes keep their users, groups and capabilities through checkpoints
        and moves.
    type: str
  group:
    description: The primary group, a name from the pod's C(/etc/group) or a number; defaults to the user's.
    type: str
  state:
    description:
      - V(started) creates the pod if needed and makes sure it runs. A checkpointed pod is refused; restore it instead.
      - V(stopped) makes sure it does not run (creating its definition if needed); its network identity is released.
      - V(absent) stops it and removes its manifest and checkpoint images.
      - The definition of a running pod cannot be changed; stop it first.
    type: str
    choices: [started, stopped, absent]
    default: started
  stop_timeout:
    description:
      - Seconds to wait after C(SIGTERM) before C(SIGKILL) when stopping. A shell running as PID 1 of its pod ignores
        C(SIGTERM) unless it traps it.
    type: int
    default: 10
seealso:
  - module: autopod.autopod.pod_info
  - module: autopod.autopod.pod_checkpoint
  - module: autopod.autopod.pod_restore
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Run a web server in a pod on bridge br0
  autopod.autopod.pod_create:
    name: web
    rootfs: /srv/pods/web
    command: [/usr/sbin/nginx, -g, "daemon off;"]
    network:
      address: 10.20.0.10/24
      gateway: 10.20.0.1
      bridge: br0
    mounts:
      - source: /srv/data/web
        target: /var/www
        readonly: true
    memory_max: 512M

- name: Stop it, keeping its definition
  autopod.autopod.pod_create:
    name: web
    state: stopped

- name: Remove it and its checkpoint images
  autopod.autopod.pod_create:
    name: web
    state: absent
"""

RETURN = r"""
pod:
  description: The pod after the change (or as it would be, in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Pod name.
      type: str
      returned: always
      sample: web
    state:
      description: One of V(running), V(stopped), V(checkpointed), V(absent).
      type: str
      returned: always
      sample: running
    init_pid:
      description: Host PID of the pod's first process, when running.
      type: int
      returned: success
      sample: 4242
    supervisor_pid:
      description: PID of the pod's supervisor, when running.
      type: int
      returned: success
      sample: 4240
    address:
      description: The pod's address in CIDR form.
      type: str
      returned: success
      sample: 10.20.0.10/24
    mac:
      description: The pod's MAC address.
      type: str
      returned: success
      sample: "02:9f:86:d0:81:88"
    rootfs:
      description: The pod's root filesystem.
      type: str
      returned: success
      sample: /srv/pods/web
    console_log:
      description: Where the first process writes its output, as a path on the host.
      type: str
      returned: success
      sample: /srv/pods/web/.autopod/console.log
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample: ["create pod web", "start pod web"]
diff:
  description: The pod before and after.
  returned: always
  type: dict
  sample: {"before": {"state": "absent"}, "after": {"state": "running"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module
from ansible_collections.autopod.autopod.plugins.module_utils.pods import Pods

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    rootfs=dict(type="path"),
    command=dict(type="list", elements="str"),
    env=dict(type="dict", default={}),
    workdir=dict(type="str", default="/"),
    hostname=dict(type="str"),
    network=dict(type="dict", options=dict(
        address=dict(type="str", required=True),
        bridge=dict(type="str", required=True),
        gateway=dict(type="str"),
        mac=dict(type="str"),
        mtu=dict(type="int"),
        ipv6=dict(type="bool", default=False),
    )),
    mounts=dict(type="list", elements="dict", default=[], options=dict(
        source=dict(type="path", required=True),
        target=dict(type="str", required=True),
        readonly=dict(type="bool", default=False),
    )),
    allow_host_paths=dict(type="bool", default=False),
    no_new_privs=dict(type="bool", default=False),
    memory_max=dict(type="str"),
    user=dict(type="str"),
    group=dict(type="str"),
    state=dict(type="str", choices=["started", "stopped", "absent"], default="started"),
    stop_timeout=dict(type="int", default=10),
    **STATE_DIR_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    pods = Pods(module.params["state_dir"], module.check_mode)
    run_module(module, lambda: pods.ensure(module.params))


if __name__ == "__main__":
    main()
