"""Header texts of received images (core.archive.part10._Header): plain 7-bit values are decoded
as ASCII without pydicom's codecs (issue 16: those look-ups cost more than the rest of the header).
For every character set a data set may declare, that gives what pydicom gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.charset import TEXT_VR_DELIMS, convert_encodings, decode_bytes
from pydicom.valuerep import PersonName

from pacsbrowser.core.archive.part10 import RawHeader, _Header, _plain

CHARSETS = ["", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87", "ISO 2022 IR 13", "GB18030", "ISO_IR 144",
            "ISO 2022 IR 149", "ISO_IR 126"]
plain_bytes = st.binary(max_size=64).filter(lambda b: b.isascii() and 0x1B not in b)


@settings(max_examples=300, deadline=None)
@given(value=plain_bytes, charset=st.sampled_from(CHARSETS))
def test_plain_values_read_as_pydicom_reads_them(value: bytes, charset: str):
    values = {0x00100010: value, 0x00081030: value}
    if charset:
        values[0x00080005] = charset.encode()
    header = _Header(RawHeader(values), True)
    encodings = convert_encodings([charset] if charset else ["ISO_IR 6"])
    assert header.person(0x00100010) == str(PersonName(value, encodings, validation_mode=config.IGNORE)).strip(" \x00")
    assert header.text(0x00081030) == decode_bytes(value, encodings, TEXT_VR_DELIMS).strip(" \x00")


def test_what_is_not_plain_goes_through_pydicom():
    assert not _plain("Müller".encode("latin-1"))
    assert not _plain(b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")  # ISO 2022: 7-bit, with ESC
    header = _Header(RawHeader({0x00080005: b"\\ISO 2022 IR 87",
                                0x00100010: b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"}), True)
    assert header.person(0x00100010) == "Yamada^Tarou=山田^太郎"
