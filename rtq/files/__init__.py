"""What rtq reads and writes.

- :mod:`rtq.files.destination`: where rtq writes (rendered audio, ``--report``,
  ``--plot``, ``--stats-json``, the cache): checked destinations, files that appear
  complete or not at all and never replace one without ``force``.
- :mod:`rtq.files.audio`: audio files through libsndfile: inputs opened and read with
  one-line errors that name the file, checked against the length their header promises;
  outputs written reproducibly.
"""
