"""Just enough protobuf encoding for a pprof profile.

Hand-written on purpose: a profile needs varints, length-delimited fields and
packed repeated varints, which is a few dozen lines, not a dependency on a
protobuf runtime. Wire format: https://protobuf.dev/programming-guides/encoding/
"""

_VARINT = 0
_LENGTH_DELIMITED = 2
_UINT64_MASK = (1 << 64) - 1


def _varint(out, value):
    # Negative int64 values go out as their 64-bit two's complement (10 bytes).
    value &= _UINT64_MASK
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class Message:
    """The encoded fields of one message, appended in field order."""

    __slots__ = ('data',)

    def __init__(self):
        self.data = bytearray()

    def integer(self, field, value):
        """An int64/uint64/bool field; zero is proto3's default and is left out."""
        if value:
            _varint(self.data, field << 3 | _VARINT)
            _varint(self.data, int(value))
        return self

    def bytes(self, field, payload):
        """A string, bytes or embedded message field, always written."""
        _varint(self.data, field << 3 | _LENGTH_DELIMITED)
        _varint(self.data, len(payload))
        self.data += payload
        return self

    def message(self, field, message):
        return self.bytes(field, message.data)

    def packed(self, field, values):
        """A repeated integer field, packed as proto3 does by default."""
        if values:
            payload = bytearray()
            for value in values:
                _varint(payload, int(value))
            self.bytes(field, payload)
        return self
