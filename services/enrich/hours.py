"""Seconds between two instants that fall inside configured business hours."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from leadflow.config import BusinessHours


def business_seconds(start: datetime, end: datetime, hours: BusinessHours) -> float:
    """Seconds of [start, end) inside business hours (weekday set, [start_hour, end_hour) local time)."""
    if start.tzinfo is None:  # the warehouse returns naive UTC
        start, end = start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc)
    if end <= start:
        return 0.0
    if hours.always:
        return (end - start).total_seconds()
    tz = ZoneInfo(hours.timezone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    total = 0.0
    day = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < local_end:
        if day.weekday() in hours.weekdays:
            open_at = (day + timedelta(hours=hours.start_hour)).replace(tzinfo=None).replace(tzinfo=tz)
            close_at = (day + timedelta(hours=hours.end_hour)).replace(tzinfo=None).replace(tzinfo=tz)
            lo, hi = max(open_at, local_start), min(close_at, local_end)
            if hi > lo:
                total += (hi.astimezone(start.tzinfo) - lo.astimezone(start.tzinfo)).total_seconds()
        day = (day + timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=tz)
    return total
