from __future__ import annotations

import re

# USPS codes of the states, DC and the territories whose residents HIPAA's media-notice
# rule (§164.406) counts as a "State or jurisdiction".
_CODES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE "
    "NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP"
)
US_JURISDICTIONS: frozenset[str] = frozenset(_CODES.split())

_ZIP = re.compile(r"\d{5}(-\d{4})?")


def jurisdiction_rule(value: str) -> str | None:
    if value not in US_JURISDICTIONS:
        return "must be a two-letter USPS state or territory code"
    return None


def postal_code_rule(value: str) -> str | None:
    if not _ZIP.fullmatch(value):
        return "must be a US ZIP code of 5 digits, optionally followed by -NNNN"
    return None
