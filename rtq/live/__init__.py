"""Live audio: chains on a stream's audio thread, whose callback is compiled code.

Public: :class:`~rtq.live.session.LiveSession` and :class:`~rtq.live.sources.Source`
(exported by :mod:`rtq`).  The rest is the machinery behind them: the callback and its
control block (``callback``), the audio path (``engine``, ``synchronised``), the stream
backends (``portaudio/``, ``nullstream``), ``limits`` and ``wakeup``.
"""
