"""E-mail address syntax, one rule for every format (contact points, iteras customers, csv logins)."""

from __future__ import annotations

import re

from shared.errors import InvalidValue

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")


def check_email(value: str, field: str = "Email") -> None:
    """Raise InvalidValue naming ``field`` when ``value`` is not name@domain.tld."""
    if not EMAIL.match(value):
        raise InvalidValue(f"{field} {value!r} is not a valid e-mail address", field=field, value=value,
                           hint="expected name@domain.tld")
