"""The maintenance window test: plain hours, hours across midnight, and the weekday a night belongs to."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.test.in_window import in_window

SAT = datetime.date(2026, 12, 5)  # a Saturday


def at(day: datetime.date, hhmm: str, offset_days: int = 0) -> datetime.datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime.datetime.combine(day + datetime.timedelta(days=offset_days), datetime.time(hours, minutes),
                                     tzinfo=datetime.timezone.utc)


def test_no_window_means_any_time():
    assert in_window(at(SAT, "03:17"))


def test_plain_hours_include_the_start_and_exclude_the_end():
    assert in_window(at(SAT, "02:00"), [], "02:00-05:00")
    assert in_window(at(SAT, "04:59"), [], "02:00-05:00")
    assert not in_window(at(SAT, "05:00"), [], "02:00-05:00")
    assert not in_window(at(SAT, "01:59"), [], "02:00-05:00")


def test_hours_across_midnight():
    assert in_window(at(SAT, "23:30"), [], "22:00-02:00")
    assert in_window(at(SAT, "00:00"), [], "22:00-02:00")
    assert in_window(at(SAT, "01:59"), [], "22:00-02:00")
    assert not in_window(at(SAT, "02:00"), [], "22:00-02:00")
    assert not in_window(at(SAT, "21:59"), [], "22:00-02:00")


def test_the_small_hours_belong_to_the_night_before():
    saturday_night = (["Sat"], "22:00-02:00")
    assert in_window(at(SAT, "22:00"), *saturday_night)
    assert in_window(at(SAT, "01:00", offset_days=1), *saturday_night)  # Sunday 01:00, Saturday's night
    assert not in_window(at(SAT, "01:00"), *saturday_night)  # Saturday 01:00 is Friday's night
    assert not in_window(at(SAT, "22:30", offset_days=1), *saturday_night)  # Sunday night


def test_days_alone():
    assert in_window(at(SAT, "12:00"), ["Sat", "Sun"])
    assert in_window(at(SAT, "12:00"), "Sat\nSun") and in_window(at(SAT, "12:00"), "Fri,Sat")
    assert not in_window(at(SAT, "12:00"), "Mon\nTue")
    assert not in_window(at(SAT, "12:00", offset_days=2), ["Sat", "Sun"])  # Monday


def test_a_local_time_across_a_daylight_saving_change_is_judged_on_its_wall_clock():
    # Europe/Berlin's clocks went back at 03:00 on Sunday 2026-10-25: 02:30 happened twice
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    summer = datetime.timezone(datetime.timedelta(hours=2))
    window = (["Sat"], "22:00-03:00")
    assert in_window(datetime.datetime(2026, 10, 25, 2, 30, tzinfo=summer), *window)
    assert in_window(datetime.datetime(2026, 10, 25, 2, 30, tzinfo=berlin), *window)
    assert not in_window(datetime.datetime(2026, 10, 25, 3, 0, tzinfo=berlin), *window)


@pytest.mark.parametrize("days, hours, problem", [
    (["Saturday"], "", "unknown weekdays Saturday"),
    ([], "22-02", "HH:MM-HH:MM"),
    ([], "25:00-02:00", "HH:MM-HH:MM"),
    ([], "22:00", "HH:MM-HH:MM"),
])
def test_a_malformed_window_is_refused_by_name(days, hours, problem):
    with pytest.raises(AnsibleFilterError, match=problem):
        in_window(at(SAT, "12:00"), days, hours)


def test_something_that_is_not_a_moment_is_refused():
    with pytest.raises(AnsibleFilterError, match="datetime"):
        in_window("2026-12-05T12:00", ["Sat"])
