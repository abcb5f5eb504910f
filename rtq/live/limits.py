"""What a live stream may ask for: the bounds that keep ``rtq live``'s memory bounded.

The engine and its chain hold memory per channel, and the chain runs on pieces of at
most :data:`PIECE` frames whatever the stream's block size, so memory grows with
``channels`` (about 10 MiB each for the heaviest shipped preset, ``dsd64-1bit``;
BENCHMARKS.md) but not with ``blocksize``.  A light module: the command line reads it
for its help text without loading the engine.
"""

#: Channels a live stream may have.
MAX_CHANNELS = 64
#: Frames per callback a stream may ask for (341 ms at 48 kHz, beyond any host's period).
MAX_BLOCKSIZE = 16384
#: The chain runs on pieces of at most this many frames (the output does not depend on
#: how the stream is cut).
PIECE = 1024
#: Samples (all channels) a looped source (a file, a buffer) may hold: it is kept in
#: memory whole, as float64 (512 MiB; 11.6 minutes of stereo at 48 kHz).
MAX_SOURCE_SAMPLES = 1 << 26
