"""The test autopod.autopod.in_window: is a moment inside the maintenance window."""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional, Sequence

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: in_window
short_description: Is a moment inside the maintenance window
version_added: 0.2.0
description:
  - True when work may start at the moment tested, under a window of weekdays and hours.
  - Hours V(HH:MM-HH:MM) may wrap midnight. A window that wraps belongs to the day it opens on, so with
    O(days=[Sat]) and O(hours=22:00-02:00) Sunday 01:00 is inside (Saturday night's window) and Saturday 01:00 is not.
  - An empty O(days) allows every day; an empty O(hours) allows the whole day.
positional: days, hours
options:
  _input:
    description: The moment, a datetime (for example V(now(utc=true))).
    type: raw
    required: true
  days:
    description: Weekdays the window opens on, English three-letter names (V(Mon) ... V(Sun)); a string of them
      separated by commas or newlines (an AWX survey's multiselect) is taken too.
    type: list
    elements: str
    default: []
  hours:
    description: V(HH:MM-HH:MM), start included, end excluded.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Leave the host alone outside Saturday and Sunday nights
  ansible.builtin.meta: end_host
  when: not (now(utc=true) is autopod.autopod.in_window(['Sat', 'Sun'], '22:00-04:00'))
"""

RETURN = r"""
_value:
  description: Whether the moment is inside the window.
  type: bool
"""

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _minutes(text: str) -> int:
    hours, _sep, minutes = text.strip().partition(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ValueError(text)
    return value


def _opening_day(moment: datetime.datetime, hours: str) -> Optional[int]:
    """The weekday (0 = Monday) of the window that holds `moment`, or None when outside the hours."""
    if not hours:
        return moment.weekday()
    start_text, sep, end_text = hours.partition("-")
    if not sep:
        raise ValueError(hours)
    start, end, now = _minutes(start_text), _minutes(end_text), moment.hour * 60 + moment.minute
    if start <= end:
        return moment.weekday() if start <= now < end else None
    if now >= start:
        return moment.weekday()
    return (moment.weekday() - 1) % 7 if now < end else None  # the small hours of last night's window


def in_window(moment: Any, days: Sequence[str] = (), hours: str = "") -> bool:
    if not isinstance(moment, datetime.datetime):
        raise AnsibleFilterError("in_window tests a datetime, such as now(utc=true); got %r" % (moment,))
    if isinstance(days, str):  # an AWX survey's multiselect, or -e "autopod_window_days=Sat,Sun"
        days = days.replace(",", " ").split()
    unknown = [d for d in days or () if d not in DAYS]
    if unknown:
        raise AnsibleFilterError("in_window: unknown weekdays %s (use %s)" % (", ".join(unknown), ", ".join(DAYS)))
    try:
        opening = _opening_day(moment, hours or "")
    except ValueError:
        raise AnsibleFilterError("in_window: hours must be HH:MM-HH:MM, got %r" % (hours,))
    return opening is not None and (not days or DAYS[opening] in days)


class TestModule:
    def tests(self) -> Dict[str, Any]:
        return {"in_window": in_window}
