"""Audio host APIs and devices, as PortAudio sees them.

PortAudio enumerates devices once, when :mod:`sounddevice` is first imported.
A JACK server therefore has to be running *before* that import for its
"devices" (JACK clients with ports) to be listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rtq.errors import RtqError
from rtq.live.portaudio import sd

Kind = Literal["input", "output"]


@dataclass(frozen=True)
class HostApi:
    """One PortAudio host API (ALSA, JACK, ...)."""

    index: int
    name: str
    device_count: int


@dataclass(frozen=True)
class Device:
    """One PortAudio device.

    Attributes
    ----------
    index : int
        PortAudio device index (what ``--device N`` selects).
    name : str
        Device name as reported by the host API.
    hostapi : str
        Name of the host API the device belongs to.
    max_input_channels, max_output_channels : int
        Channel limits.
    default_samplerate : float
        The device's default sample rate in Hz.
    default_low_latency, default_high_latency : tuple of float
        ``(input, output)`` latencies in seconds for ``latency='low'|'high'``.
    is_default_input, is_default_output : bool
        Whether PortAudio picks this device when none is given.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_low_latency: tuple[float, float]
    default_high_latency: tuple[float, float]
    is_default_input: bool
    is_default_output: bool

    def channels(self, kind: Kind) -> int:
        """Maximum channel count for ``kind`` ('input' or 'output')."""
        return self.max_input_channels if kind == "input" else self.max_output_channels

    def describe(self) -> str:
        """One-line description, e.g. ``[0] system (JACK Audio Connection Kit, 2 in, 2 out)``."""
        return (
            f"[{self.index}] {self.name} ({self.hostapi}, "
            f"{self.max_input_channels} in, {self.max_output_channels} out)"
        )


def host_apis() -> list[HostApi]:
    """List PortAudio's host APIs."""
    return [
        HostApi(index=i, name=api["name"], device_count=len(api["devices"]))
        for i, api in enumerate(sd.query_hostapis())
    ]


def devices() -> list[Device]:
    """List all PortAudio devices with their channel counts, rates and default marks."""
    apis = sd.query_hostapis()
    default_in = sd._lib.Pa_GetDefaultInputDevice()
    default_out = sd._lib.Pa_GetDefaultOutputDevice()
    return [
        Device(
            index=i,
            name=info["name"],
            hostapi=apis[info["hostapi"]]["name"],
            max_input_channels=info["max_input_channels"],
            max_output_channels=info["max_output_channels"],
            default_samplerate=info["default_samplerate"],
            default_low_latency=(
                info["default_low_input_latency"],
                info["default_low_output_latency"],
            ),
            default_high_latency=(
                info["default_high_input_latency"],
                info["default_high_output_latency"],
            ),
            is_default_input=i == default_in,
            is_default_output=i == default_out,
        )
        for i, info in enumerate(sd.query_devices())
    ]


def _available(candidates: list[Device], kind: Kind) -> str:
    if not candidates:
        hint = ("; for a built-in source instead, use --input tone:1000:-20, noise:DBFS or a file"
                if kind == "input" else " (is the audio server running?)")
        return f"no {kind} devices are available{hint}"
    return "available: " + "; ".join(d.describe() for d in candidates)


def resolve(query: int | str | None, kind: Kind, candidates: list[Device] | None = None) -> Device:
    """Find the device to use for ``kind``.

    Parameters
    ----------
    query : int, str or None
        A device index (``int`` or a string of digits), a case-insensitive
        substring of the device name, or None for PortAudio's default device.
        A name that equals a device name exactly (ignoring case) wins over
        substring matches.
    kind : {'input', 'output'}
        Which direction the device must support.
    candidates : list of Device, optional
        Devices to choose from (default: :func:`devices`).

    Returns
    -------
    Device

    Raises
    ------
    RtqError
        One line naming the problem and listing the candidate devices.
    """
    all_devices = devices() if candidates is None else candidates
    usable = [d for d in all_devices if d.channels(kind) > 0]
    if isinstance(query, str) and query.strip().isdigit():
        query = int(query)
    if query is None:
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d
        raise RtqError(f"no default {kind} device; {_available(usable, kind)}")
    if isinstance(query, int):
        device = next((d for d in all_devices if d.index == query), None)
        if device is None:
            raise RtqError(f"no device with index {query}; {_available(usable, kind)}")
        if device.channels(kind) == 0:
            raise RtqError(f"device {device.describe()} has no {kind} channels; {_available(usable, kind)}")
        return device
    needle = query.strip().lower()
    matches = [d for d in usable if needle in d.name.lower()]
    exact = [d for d in matches if d.name.lower() == needle]
    if len(exact) == 1:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RtqError(f"no {kind} device matches {query!r}; {_available(usable, kind)}")
    raise RtqError(f"{kind} device {query!r} is ambiguous; candidates: " + "; ".join(d.describe() for d in matches))


def devices_text() -> str:
    """Human-readable listing of host APIs and devices (what ``rtq devices`` prints)."""
    apis = host_apis()
    devs = devices()
    lines = ["Host APIs: " + ", ".join(f"{a.name} ({a.device_count} devices)" for a in apis)]
    if not devs:
        lines.append("No audio devices found (a JACK server must be running before rtq starts).")
        return "\n".join(lines)
    width = max(len(d.name) for d in devs)
    lines.append(f"   {'idx':>3}  {'name':<{width}}  {'in':>3}  {'out':>3}  {'rate':>7}  host API")
    for d in devs:
        mark = {(True, True): "*", (True, False): ">", (False, True): "<"}.get(
            (d.is_default_input, d.is_default_output), " "
        )
        lines.append(
            f" {mark} {d.index:>3}  {d.name:<{width}}  {d.max_input_channels:>3}  "
            f"{d.max_output_channels:>3}  {d.default_samplerate:>7.0f}  {d.hostapi}"
        )
    lines.append("(> default input, < default output, * both)")
    return "\n".join(lines)
