"""Device listing and selection, on the JACK dummy server and on hand-made device lists."""

import pytest

from rtq.errors import RtqError
from rtq.live.portaudio.devices import Device, devices, devices_text, host_apis, resolve


def _device(index, name, ins=2, outs=2, default=False):
    return Device(
        index=index,
        name=name,
        hostapi="Test API",
        max_input_channels=ins,
        max_output_channels=outs,
        default_samplerate=48000.0,
        default_low_latency=(0.005, 0.005),
        default_high_latency=(0.05, 0.05),
        is_default_input=default,
        is_default_output=default,
    )


CANDIDATES = [
    _device(0, "Monitor Out", ins=0, outs=2),
    _device(1, "USB Mic", ins=1, outs=0),
    _device(2, "USB Interface", default=True),
    _device(3, "usb interface 2"),
]


@pytest.mark.audio
def test_jack_dummy_server_is_listed():
    jack_api = [a for a in host_apis() if a.name.startswith("JACK")]
    assert len(jack_api) == 1 and jack_api[0].device_count >= 1
    system = resolve("system", "output")
    assert (system.max_input_channels, system.max_output_channels) == (2, 2)
    assert system.default_samplerate == 48000
    assert system in devices()
    assert resolve(None, "input") == system  # JACK's default device
    assert resolve(system.index, "input") == system
    assert resolve(str(system.index), "output") == system
    assert resolve("SYST", "input") == system


@pytest.mark.audio
def test_devices_text_lists_the_server():
    text = devices_text()
    assert "JACK Audio Connection Kit" in text
    line = next(line for line in text.splitlines() if " system " in line)
    assert line.startswith(" * ") and "48000" in line


@pytest.mark.audio
def test_unknown_device_is_one_line_listing_what_exists():
    with pytest.raises(RtqError) as err:
        resolve("no such card", "output")
    message = str(err.value)
    assert "\n" not in message
    assert "no such card" in message and "system" in message and "2 in, 2 out" in message


def test_name_substring_is_case_insensitive_and_direction_aware():
    assert resolve("mic", "input", CANDIDATES).index == 1
    assert resolve("MONITOR", "output", CANDIDATES).index == 0
    with pytest.raises(RtqError, match="no input device matches 'monitor'"):
        resolve("monitor", "input", CANDIDATES)


def test_exact_name_wins_over_substring_matches():
    assert resolve("usb interface", "output", CANDIDATES).index == 2


def test_ambiguous_name_lists_the_candidates():
    with pytest.raises(RtqError) as err:
        resolve("usb", "input", CANDIDATES)
    message = str(err.value)
    assert "\n" not in message and "ambiguous" in message
    assert "[1] USB Mic" in message and "[2] USB Interface" in message and "[3] usb interface 2" in message
    assert "Monitor" not in message  # it has no inputs


def test_index_errors():
    assert resolve(3, "output", CANDIDATES).index == 3
    with pytest.raises(RtqError, match="no device with index 9; available: .*USB Interface"):
        resolve(9, "output", CANDIDATES)
    with pytest.raises(RtqError, match=r"\[1\] USB Mic .* has no output channels"):
        resolve(1, "output", CANDIDATES)


def test_default_device():
    assert resolve(None, "output", CANDIDATES).index == 2
    with pytest.raises(RtqError, match="no default input device; no input devices are available; for a built-in "
                       "source instead, use --input tone:1000:-20"):
        resolve(None, "input", [])
