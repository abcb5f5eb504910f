"""Live audio: a duplex PortAudio stream whose callback is compiled code (see ``stream``)."""
