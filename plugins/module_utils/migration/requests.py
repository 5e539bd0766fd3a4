# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pod_migrate and pod_receive are asked to do, as one object each, built from the modules' parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import Limits


@dataclass
class MoveRequest:
    """pod_migrate: move pod `name` to the receiver at destination:port."""

    state_dir: str
    criu_path: str
    name: str
    destination: str
    port: int
    credentials: Credentials
    storage: str = "copy"
    strategy: str = "auto"
    image_dir: Optional[str] = None
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "MoveRequest":
        return cls(state_dir=params["state_dir"], criu_path=params["criu_path"], name=params["name"],
                   destination=params["destination"], port=params["port"],
                   credentials=Credentials.from_params(params["credentials"], params["encryption"]),
                   storage=params["storage"], strategy=params["strategy"], image_dir=params["image_dir"],
                   limits=Limits(max_freeze=float(params["max_freeze"]), max_pause_ms=params["max_pause_ms"]))


@dataclass
class ReceiveRequest:
    """pod_receive: get ready to take the pod `definition` and wait for it on listen:port."""

    state_dir: str
    criu_path: str
    definition: Dict[str, Any]
    listen: str
    credentials: Credentials
    storage: str = "copy"
    port: int = 0
    image_dir: Optional[str] = None
    timeout: float = 300
    home: Optional[str] = None
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ReceiveRequest":
        return cls(state_dir=params["state_dir"], criu_path=params["criu_path"], definition=params["definition"],
                   listen=params["listen"],
                   credentials=Credentials.from_params(params["credentials"], params["encryption"]),
                   storage=params["storage"], port=params["port"], image_dir=params["image_dir"],
                   timeout=params["timeout"], home=params["home"])
