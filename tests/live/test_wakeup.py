"""The CPU latency QoS request that rtq live holds on a sound card (rtq.live.wakeup)."""
import os
import struct

import pytest

from rtq.live.wakeup import DEVICE, WakeupLatency, system_limit


def test_request_is_written_as_a_32_bit_integer_and_closed_on_release(tmp_path):
    target = tmp_path / "qos"
    target.write_bytes(b"")
    request = WakeupLatency(5, device=str(target))
    with request:
        assert request.held and request.status == "held at 5 us"
        fd = request._fd
        os.fstat(fd)
    assert not request.held
    with pytest.raises(OSError):
        os.fstat(fd)
    assert target.read_bytes() == struct.pack("=i", 5)
    request.release()  # idempotent


def test_unavailable_device_is_reported_not_raised(tmp_path):
    missing = tmp_path / "missing"
    request = WakeupLatency(0, device=str(missing))
    assert request.status == "not requested"
    assert request.acquire() is False
    assert not request.held
    assert request.status == f"not held ({missing}: No such file or directory)"
    request.release()


@pytest.mark.parametrize("microseconds", [-1, 2 ** 31])
def test_latency_outside_the_kernels_range_is_an_error(microseconds):
    with pytest.raises(ValueError, match="microseconds"):
        WakeupLatency(microseconds)


def test_kernel_applies_the_held_limit_and_drops_it_on_release():
    before = system_limit()
    if before is None or not os.access(DEVICE, os.W_OK):
        pytest.skip(f"{DEVICE} is not readable and writable here (needs root)")
    if before <= 7:
        pytest.skip(f"another process holds a CPU latency limit of {before} us")
    with WakeupLatency(7) as request:
        assert request.held
        assert system_limit() == 7
    assert system_limit() == before
