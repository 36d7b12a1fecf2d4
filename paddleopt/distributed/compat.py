"""Make ``fleet.DistributedStrategy`` work with the pinned protobuf (7.x).

Paddle 2.6.2's ``distributed_strategy.py`` reads ``FieldDescriptor.label`` in almost every
getter and setter (``hybrid_configs``, ``amp_configs``, ``gradient_merge_configs``...).
protobuf 7 removed ``label`` (``is_repeated`` replaces it), so on this stack
``strategy.hybrid_configs = {...}`` raises "TypeError: hybrid_configs is not a attribute of
DistributedStrategy" and ``fleet.init(strategy=...)`` fails (checked on paddle 2.6.2 +
protobuf 7.36.2). The C (upb) descriptors cannot be patched, the pure-Python ones can: a
process that needs the fleet runtime selects the Python implementation *before* protobuf is
first imported and gets a ``label`` property computed from ``is_repeated``/``is_required``.
Strategy protos are tiny, so the slower Python protobuf costs nothing measurable.

Only the processes started by the launcher for a ``fleet.use_fleet``/hybrid run do this
(``paddleopt.distributed.worker``); plain DataParallel never touches DistributedStrategy.
"""
from __future__ import annotations

import os
import sys

PROTOBUF_ENV = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"


def select_python_protobuf() -> None:
    """Ask for the pure-Python protobuf; must run before anything imports protobuf."""
    if "google.protobuf" in sys.modules:
        return  # too late to switch; patch_field_label() tells whether it still works
    os.environ[PROTOBUF_ENV] = "python"


def patch_field_label() -> bool:
    """Give ``FieldDescriptor`` the ``label`` attribute paddle's fleet reads. True when the
    attribute is available afterwards (already there, or patched)."""
    from google.protobuf import descriptor

    cls = descriptor.FieldDescriptor
    if hasattr(cls, "label"):
        return True

    def label(field: object) -> int:
        if getattr(field, "is_repeated", False):
            return cls.LABEL_REPEATED
        return cls.LABEL_REQUIRED if getattr(field, "is_required", False) else \
            cls.LABEL_OPTIONAL

    try:
        cls.label = property(label)  # type: ignore[attr-defined]
    except TypeError:  # the C implementation's type is immutable
        return False
    return True


def fleet_strategy_usable() -> bool:
    """Whether DistributedStrategy getters work in this process (for a clear error)."""
    return patch_field_label()
